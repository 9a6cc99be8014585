"""SmartfloStream: what every Smartflo stream does with the SDK and its records.

A stream builds each page's request (the SDK's public ``get_http_request`` path),
reads the pages with a ``PageReader`` (pages.py: how the endpoint pages, at what
size), and turns each raw object into a schema-valid record with its
``RecordNormalizer``. How a stream replicates is its base class's job:
``FullTableStream`` (versions.py), ``UpdatedAfterStream`` (incremental.py),
``WindowedStream`` (windowed.py).

A child stream (``parent_stream_type``) is synced once per record of its parent,
with that record's context. If the first request it makes is refused, it is
skipped for the rest of the run as a whole stream would be (and so are a refused
stream's children). Once it has been read, a parent record whose own records
cannot be read (an error object, a refusal) is named in the log and the rest is
read on; the run then fails at its end (see ``report``).
"""

from __future__ import annotations

import functools
import typing as t
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cached_property
from importlib import resources

import requests
from singer_sdk import RESTStream, SchemaDirectory
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.singerlib import RecordMessage
from singer_sdk.streams.rest import PageContext
from typing_extensions import override

from tap_smartflo import redact, schemas
from tap_smartflo.errors import QUOTED, EndpointError, ErrorBodyError, SmartfloError
from tap_smartflo.normalize import IST, NormalizationError, RecordNormalizer
from tap_smartflo.pages import PageNumbers, PageReader

if t.TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping

    from singer_sdk import Tap
    from singer_sdk.helpers.types import Context

    from tap_smartflo.auth import SmartfloAuth
    from tap_smartflo.custom_fields import CustomFieldColumns
    from tap_smartflo.discovery import ContactColumns
    from tap_smartflo.memory import AccountMemory
    from tap_smartflo.normalize import Converter, Source
    from tap_smartflo.output import Output
    from tap_smartflo.pages import Paginator
    from tap_smartflo.pagination import PageSize
    from tap_smartflo.report import RunReport
    from tap_smartflo.transport import Transport

SCHEMAS = SchemaDirectory(resources.files(schemas))
#: The pages of a query whose keys are kept, to emit a record shifted onto the
#: next page only once.
OVERLAP_PAGES = 3
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
    #: Emits Singer messages now: STATE (the tap's, when it has changed), others.
    output: Output
    #: This run's version of every full-table stream (epoch milliseconds when the
    #: run began: a later run's is greater).
    table_version: int
    #: Contacts' custom-field columns: the input catalog's, else discovered.
    contact_columns: ContactColumns
    #: What the tap remembers of the account between runs (rate limit, page sizes).
    memory: AccountMemory


class SmartfloStream(RESTStream[t.Any]):
    """A Smartflo list endpoint: pages of ``results``, normalized to the schema."""

    #: Where the records are in a page's body; None: the body itself is the list.
    records_key: str | None = "results"
    #: How the endpoint pages (pages.py).
    paging: t.ClassVar[PageNumbers] = PageNumbers()
    #: Records are projected onto the schema by RecordNormalizer, which yields
    #: schema-valid records by construction (tests check every one of them), so the
    #: SDK's generic per-record type conformance is redundant work.
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE
    #: Time zone of naive times in this endpoint's records.
    naive_tz = IST
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
        #: Whether this run asked for the stream's records (its SCHEMA went out).
        self.read_in_this_run = False

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

    @property
    @override
    def effective_schema(self) -> dict[str, t.Any]:
        # Public SDK API, which says to override it to ignore the input schema.
        # The normalizer types every record by the tap's own schema, so that is the
        # schema announced: a catalog that retypes a property (Meltano's `schema`
        # extra) would announce a type the records do not have. The tap names such
        # properties in one log line (tap.py).
        return self.schema

    @property
    @override
    def emit_activate_version_messages(self) -> bool:
        # Public SDK API: the SDK reads it to send its ACTIVATE_VERSION *before* a
        # full-table stream's records, which would empty the target's table until
        # they arrive. Always off: FullTableStream sends its own after the last
        # record (versions.py); a catalog that forces FULL_TABLE on another stream
        # gets none. tests/test_activate_version.py fails if a message comes before
        # a record, or more than once.
        return False

    # Records

    @cached_property
    def normalizer(self) -> RecordNormalizer:
        """The function that turns an API object into a schema-valid record.

        It keeps only the properties the catalog selects (nested ones too), so
        records leave already pruned and typed (see ``_generate_record_messages``).
        A stream read only for its children's sake keeps every property: its
        records are not emitted, and its children's context comes from them.
        """
        return RecordNormalizer(
            self.schema,
            naive_tz=self.naive_tz,
            overrides=self.converter_overrides,
            derived=self.derived_fields,
            selected=self.mask.__getitem__ if self.selected else None,
            custom_columns=self.custom_columns,
        )

    @property
    def custom_columns(self) -> CustomFieldColumns | None:
        """What fills columns from a list of name/value pairs (none by default)."""
        return None

    @property
    def record_version(self) -> int | None:
        """The version this run's records carry (None here; see versions.py)."""
        return None

    @override
    def _generate_record_messages(
        self, record: dict[str, t.Any]
    ) -> t.Generator[RecordMessage, None, None]:
        # One of the two SDK internals the tap overrides (0.54 has no public hook
        # for it): the SDK would prune deselected properties and conform types
        # here, on every record, which the normalizer has already done (the tests
        # validate every record against the schema); that was a third of the SDK's
        # cost per record. Records also carry the time their page arrived and
        # their version. tests/test_sdk_contract.py fails if the SDK stops calling
        # this method.
        for stream_map in self.stream_maps:
            mapped = stream_map.transform(record)
            if mapped is not None:
                self.services.report.emitted(self.name)
                yield RecordMessage(
                    stream=stream_map.stream_alias,
                    record=mapped,
                    version=self.record_version,
                    time_extracted=self._extracted_at,
                )

    @cached_property
    def writes_batches(self) -> bool:
        """Whether records leave in BATCH files (``batch_config``), not as messages."""
        return self.get_batch_config(self.config) is not None

    @override
    def post_process(
        self, row: dict[str, t.Any], context: Context | None = None
    ) -> dict[str, t.Any] | None:
        # Records bound for BATCH files skip _generate_record_messages, where the
        # others are counted: count them here, for the run's summary.
        if self.writes_batches and self.selected:
            self.services.report.emitted(self.name)
        return row

    # Requests and pages

    @cached_property
    def sizing(self) -> PageSize:
        """What the endpoint is asked for a page, and what it has shown it serves."""
        return self.paging.size(
            int(self.config["page_size"]),
            remembered=self.services.memory.page_sizes.get(self.path),
        )

    @cached_property
    def reader(self) -> PageReader:
        """What reads this endpoint's pages."""
        return PageReader(
            stream=self.name,
            path=self.path,
            records_key=self.records_key,
            size=self.sizing,
            transport=self.services.transport,
            memory=self.services.memory,
            workers=int(self.config["max_concurrent_requests"]),
            logger=self.logger,
        )

    def new_paginator(self) -> Paginator:
        """A fresh paginator for one query of this endpoint."""
        return self.paging.paginator(self.sizing)

    @override
    def get_url_params(
        self, context: Context | None, next_page_token: t.Any
    ) -> dict[str, t.Any]:
        return self.paging.params(self.sizing, next_page_token)

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

    def path_for(self, context: Context | None) -> str:
        """The path a request for ``context`` goes to (``/v1/broadcast/leads/4401``)."""
        path = str(self.path)
        for key, value in (context or {}).items():
            path = path.replace(f"{{{key}}}", str(value))
        return path

    def check_access(self, transport: Transport) -> None:
        """Ask for one record, as a connection test: raise what a run would meet.

        ``transport`` is the run's with the connection test's own budget. The
        request is prepared unsigned (the SDK's session would log in with the run's
        budget): the transport signs it, a login included, within the test's.
        """
        prepared = requests.Request(
            "GET",
            self.get_url(None),
            params=self.access_check_params(),
            headers=self.http_headers,
        ).prepare()
        transport.fetch(
            prepared,
            stream=self.name,
            path=self.path,
            records_key=self.records_key,
            what=f"{self.path} (connection test)",
        )

    def access_check_params(self) -> dict[str, t.Any]:
        """Query parameters that ask for one record (for check_access)."""
        return self.paging.check_params()

    @property
    def extracted_before(self) -> bool:
        """Whether an earlier run extracted this stream (its state says so)."""
        state = self.stream_state
        return bool(
            state.get(EXTRACTED_KEY) or state.get("replication_key_value") is not None
        )

    @override
    def get_records(self, context: Context | None) -> Iterable[dict[str, t.Any]]:
        """The stream's records; an endpoint refused from the start skips the stream.

        What a refusal means is the run report's to judge (see ``report``).
        """
        report = self.services.report
        if self.name in report.skipped:
            return  # refused already: a child is not asked again for each parent
        extracted_before = self.extracted_before
        self.read_in_this_run = True
        report.begin(self.name)
        try:
            yield from super().get_records(context)
        except EndpointError as exc:
            if not self._pages_received:
                self._refused(exc, extracted_before=extracted_before)
                return
            if self.parent_stream_type is None:
                raise
            report.not_read(self.name, _describe(context), exc)
        except ErrorBodyError as exc:
            if self.parent_stream_type is None:
                raise
            report.not_read(self.name, _describe(context), exc)
        finally:
            report.end(self.name)
        if self._pages_received:
            self.stream_state[EXTRACTED_KEY] = True
        if self.parent_stream_type is None:
            self.read_whole()

    def read_whole(self) -> None:
        """Called once the stream (and its children) were read to the end."""

    def _refused(self, error: EndpointError, *, extracted_before: bool) -> None:
        """Skip this stream, and the children it would have given their context."""
        report = self.services.report
        if self.selected:
            report.refused(self.name, error, extracted_before=extracted_before)
        for child in t.cast("list[SmartfloStream]", self.child_streams):
            if child.selected:
                report.refused(
                    child.name, error, extracted_before=child.extracted_before
                )

    @override
    def request_records(self, context: Context | None) -> Iterable[dict[str, t.Any]]:
        return self.query_records(context, self.new_paginator)

    def query_records(
        self, context: Context | None, paginator: t.Callable[[], Paginator]
    ) -> Iterator[dict[str, t.Any]]:
        """The records of every page of the query for ``context``, each once.

        ``paginator`` makes the query's paginator (again, if the page size steps
        down at the first page).

        Pages can overlap (records shift while they are read): a record whose key
        one of the last OVERLAP_PAGES pages of the query gave is not emitted again,
        unless it is a newer version (a later replication key: it changed while the
        pages were read), and one warning says how many were skipped. Only those
        pages' keys are kept: a shift moves records to a neighbouring page, and
        keeping every key of a long query cost a third more CPU (the garbage
        collector walks them) and 20 MB a 100 000 records.
        """
        keys = self.primary_keys or ()
        #: For each recent page: key -> replication key value (None without one).
        recent: deque[dict[t.Any, t.Any]] = deque(maxlen=OVERLAP_PAGES)
        skipped = 0
        pages = self.reader.pages(
            functools.partial(self.prepare_page, context),
            paginator,
            self.path_for(context),
        )
        with self.get_http_request_counter() as request_counter:
            request_counter.with_context(context)
            for _body, records in pages:
                page: dict[t.Any, t.Any] = {}
                recent.append(page)
                request_counter.increment()
                self._pages_received += 1
                self.services.memory.flush()  # what the pages taught, in the STATE
                self._extracted_at = datetime.now(timezone.utc)
                for raw in records:
                    record = self._normalized(raw)
                    if keys:
                        identity = tuple(record[k] for k in keys)
                        version = record.get(self.replication_key or "")
                        if _seen(recent, identity, version):
                            skipped += 1
                            continue
                        page[identity] = version
                    yield record
        if skipped:
            self.logger.warning(
                "%s: %d records on later pages were already emitted in this run "
                "(pages overlapped, as when records shift while pages are read): "
                "each was emitted once",
                self.path_for(context),
                skipped,
            )
        if unknown := self.normalizer.newly_unknown():
            self.logger.info(
                "Fields in %s that the schema does not have (left out): %s",
                self.path,
                ", ".join(unknown),
            )

    def _normalized(self, raw: t.Any) -> dict[str, t.Any]:  # noqa: ANN401 (API JSON)
        """``raw`` as a schema-valid record; an unreadable one ends the run."""
        try:
            record = self.normalizer(raw)
        except NormalizationError as exc:
            key = raw.get("id") if isinstance(raw, dict) else None
            msg = (
                f"A {self.name} record (id {key!r}) from {self.path} "
                f"has a value the tap cannot read: {exc}"
            )
            raise SmartfloError(msg) from None
        keys = self.primary_keys or ()
        if record is None or any(record[k] is None for k in keys):
            msg = (
                f"A {self.name} record from {self.path} has no "
                f"{', '.join(keys)}: {redact.clip(str(raw), QUOTED)}"
            )
            raise SmartfloError(msg)
        return record


def _seen(
    recent: t.Iterable[Mapping[t.Any, t.Any]], identity: object, version: object
) -> bool:
    """Whether a recent page emitted this record, in this version or a newer one."""
    for page in recent:
        if identity in page and not _newer(version, page[identity]):
            return True
    return False


def _newer(version: object, emitted: object) -> bool:
    """Whether a replication key value (an RFC 3339 UTC text) is after another."""
    return isinstance(version, str) and isinstance(emitted, str) and version > emitted


def _describe(context: Context | None) -> str:
    """The parent record a child's context stands for (``list_id 4402``)."""
    return ", ".join(f"{key} {value}" for key, value in (context or {}).items())
