"""SmartfloStream: the base stream that wires the tap's rooms together.

A stream builds each page's request (the SDK's public ``get_http_request`` path),
hands it to the tap's ``Transport`` (pace, send, retry, parse), reads pages ahead
with ``prefetch``, and turns each raw object into a schema-valid record with its
``RecordNormalizer``.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cached_property
from importlib import resources

from singer_sdk import RESTStream, SchemaDirectory
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.singerlib import RecordMessage
from singer_sdk.streams.rest import PageContext
from typing_extensions import override

from tap_smartflo import schemas
from tap_smartflo.errors import EndpointError, SmartfloError
from tap_smartflo.normalize import IST, NormalizationError, RecordNormalizer
from tap_smartflo.pagination import PageNumberPaginator
from tap_smartflo.prefetch import read_pages

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping

    import requests
    from singer_sdk import Tap
    from singer_sdk.helpers.types import Context

    from tap_smartflo.auth import SmartfloAuth
    from tap_smartflo.custom_fields import CustomFieldColumns
    from tap_smartflo.normalize import Converter, Source
    from tap_smartflo.pagination import KeysetPaginator
    from tap_smartflo.prefetch import Send
    from tap_smartflo.report import RunReport
    from tap_smartflo.transport import Transport

SCHEMAS = SchemaDirectory(resources.files(schemas))
#: Written into a stream's state once the stream has read a page, so a later run
#: can tell "this token lost access" from "this account never had the feature".
EXTRACTED_KEY = "extracted"


@dataclass(frozen=True, kw_only=True)
class Services:
    """What the tap shares with its streams: one account, one of each."""

    #: Sends every request: one session, authenticator, pace and retry policy.
    transport: Transport
    #: Counts what each stream does, notes refused streams, tells progress.
    report: RunReport
    #: Emits a STATE message with the tap's state now (when it has changed).
    write_state: Callable[[], None]
    #: Contacts' custom-field columns (name -> schema): the input catalog's, else
    #: discovered from the contact groups (once per tap).
    contact_columns: Callable[[], Mapping[str, dict[str, t.Any]]]


class SmartfloStream(RESTStream[t.Any]):
    """A Smartflo list endpoint: pages of ``results``, normalized to the schema."""

    #: Where the records are in a page's body.
    records_key = "results"
    #: Records are projected onto the schema by RecordNormalizer, which yields
    #: schema-valid records by construction (tests check every one of them), so the
    #: SDK's generic per-record type conformance is redundant work.
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE
    #: Time zone of naive times in this endpoint's records.
    naive_tz = IST
    #: The query parameter that carries the page token.
    page_param = "page"
    #: The largest ``limit`` the endpoint is documented to accept, if it says.
    max_page_size: int | None = None
    #: Converters for fields whose values need more than their schema type says.
    converter_overrides: t.ClassVar[Mapping[str, Converter]] = {}
    #: Fields whose raw value is computed from the whole raw record.
    derived_fields: t.ClassVar[Mapping[str, Source]] = {}

    @override
    def __init__(self, tap: Tap, *, services: Services) -> None:
        super().__init__(tap)
        self.services = services
        self._extracted_at = datetime.now(timezone.utc)  # when this page arrived
        self._pages_received = 0

    @cached_property
    @override
    def schema(self) -> dict[str, t.Any]:
        # Loaded once: the SDK reads a stream's schema for every record.
        return SCHEMAS.get_schema(self.name, key_properties=self.primary_keys)

    @property
    @override
    def url_base(self) -> str:
        return str(self.config["api_url"]).rstrip("/")

    @property
    @override
    def authenticator(self) -> SmartfloAuth:
        return self.services.transport.auth

    @property
    @override
    def requests_session(self) -> requests.Session:
        # The tap's one session (its proxies read once), used to prepare requests.
        return self.services.transport.session

    @property
    @override
    def http_headers(self) -> dict[str, str]:
        return {"Accept": "application/json"}

    @cached_property
    def normalizer(self) -> RecordNormalizer:
        """The function that turns an API object into a schema-valid record.

        It keeps only the properties the catalog selects (nested ones too), so
        records leave already pruned and typed (see ``_generate_record_messages``).
        """
        return RecordNormalizer(
            self.schema,
            naive_tz=self.naive_tz,
            overrides=self.converter_overrides,
            derived=self.derived_fields,
            selected=self.mask.__getitem__,
            custom_columns=self.custom_columns,
        )

    @property
    def custom_columns(self) -> CustomFieldColumns | None:
        """What fills columns from a list of name/value pairs (none by default)."""
        return None

    @override
    def _generate_record_messages(
        self, record: dict[str, t.Any]
    ) -> t.Generator[RecordMessage, None, None]:
        # The one override of an SDK internal (0.54 has no public hook for it):
        # the SDK would prune deselected properties and conform types here, on every
        # record, which the normalizer has already done (the tests validate every
        # record against the schema); that was a third of the SDK's cost per
        # record. Records also carry the time their page arrived. A test fails if
        # the SDK stops calling this method (tests/test_sdk_contract.py).
        for stream_map in self.stream_maps:
            mapped = stream_map.transform(record)
            if mapped is not None:
                self.services.report.emitted(self.name)
                yield RecordMessage(
                    stream=stream_map.stream_alias,
                    record=mapped,
                    version=self._stream_version,
                    time_extracted=self._extracted_at,
                )

    def new_paginator(self) -> PageNumberPaginator | KeysetPaginator:
        """A fresh paginator for this endpoint (page numbers unless overridden)."""
        return PageNumberPaginator()

    @property
    def page_size(self) -> int:
        """The ``limit`` to ask for: page_size, within what the endpoint accepts."""
        size = int(self.config["page_size"])
        return size if self.max_page_size is None else min(size, self.max_page_size)

    @override
    def get_url_params(
        self, context: Context | None, next_page_token: t.Any
    ) -> dict[str, t.Any]:
        return {"limit": self.page_size, self.page_param: next_page_token}

    # Requests and pages

    def prepare_page(
        self,
        context: Context | None,
        token: t.Any,  # noqa: ANN401 (a page number or a keyset key)
    ) -> requests.PreparedRequest:
        """Build the (signed) request for the page ``token``."""
        request = self.get_http_request(
            page=PageContext(stream_context=context, next_page_token=token)
        )
        return self.build_prepared_request(
            method=request.method,
            url=request.url,
            params=request.encode_params(),
            headers=request.headers,
        )

    def check_access(self) -> None:
        """Ask for one record, as a connection test: raise what a run would meet."""
        params = {"limit": 1, **self.access_check_params()}
        prepared = self.build_prepared_request(
            method="GET",
            url=self.get_url(None),
            params=params,
            headers=self.http_headers,
        )
        self.services.transport.fetch(
            prepared,
            stream=self.name,
            path=self.path,
            records_key=self.records_key,
            what=f"{self.path} (connection test)",
        )

    def access_check_params(self) -> dict[str, t.Any]:
        """Query parameters the endpoint needs besides ``limit`` (for check_access)."""
        return {}

    def iter_pages(
        self, context: Context | None
    ) -> Iterator[tuple[dict[str, t.Any], list[t.Any]]]:
        """Yield (body, raw records) for every page, in page order (see prefetch)."""
        transport = self.services.transport

        def request(token: object) -> Send:
            prepared = self.prepare_page(context, token)
            what = f"{self.path} (page {token})"
            return lambda cancelled: transport.fetch(
                prepared,
                stream=self.name,
                path=self.path,
                records_key=self.records_key,
                what=what,
                cancelled=cancelled,
            )

        return read_pages(
            request,
            self.new_paginator(),
            records_key=self.records_key,
            workers=int(self.config["max_concurrent_requests"]),
        )

    @override
    def get_records(self, context: Context | None) -> Iterable[dict[str, t.Any]]:
        """The stream's records; an endpoint refused from the start skips the stream.

        What a refusal means is the run report's to judge (see ``report``).
        """
        state = self.stream_state
        extracted_before = bool(
            state.get(EXTRACTED_KEY) or state.get("replication_key_value") is not None
        )
        report = self.services.report
        report.begin(self.name)
        try:
            yield from super().get_records(context)
        except EndpointError as exc:
            if self._pages_received:
                raise
            report.refused(self.name, exc, extracted_before=extracted_before)
            return
        finally:
            report.end(self.name)
        if self._pages_received:
            self.stream_state[EXTRACTED_KEY] = True

    @override
    def request_records(self, context: Context | None) -> Iterable[dict[str, t.Any]]:
        normalize = self.normalizer
        keys = self.primary_keys or ()
        with self.get_http_request_counter() as request_counter:
            request_counter.with_context(context)
            for _body, records in self.iter_pages(context):
                request_counter.increment()
                self._pages_received += 1
                self._extracted_at = datetime.now(timezone.utc)
                for raw in records:
                    try:
                        record = normalize(raw)
                    except NormalizationError as exc:
                        key = raw.get("id") if isinstance(raw, dict) else None
                        msg = (
                            f"A {self.name} record (id {key!r}) from {self.path} "
                            f"has a value the tap cannot read: {exc}"
                        )
                        raise SmartfloError(msg) from None
                    if record is None or any(record[k] is None for k in keys):
                        msg = (
                            f"A {self.name} record from {self.path} has no "
                            f"{', '.join(keys)}: {str(raw)[:200]}"
                        )
                        raise SmartfloError(msg)
                    yield record
        if unknown := normalize.newly_unknown():
            self.logger.info(
                "Fields in %s that the schema does not have (left out): %s",
                self.path,
                ", ".join(unknown),
            )
