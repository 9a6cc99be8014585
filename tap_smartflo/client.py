"""SmartfloStream: the base stream that wires the tap's rooms together.

A stream builds each page's request (the SDK's public ``get_http_request`` path),
hands it to the tap's ``Transport`` (pace, send, retry, parse), reads pages ahead
with ``prefetch``, and turns each raw object into a schema-valid record with its
``RecordNormalizer``.

Full-table streams and deletions. A row removed in Smartflo is simply missing from
the next full read. With ``emit_activate_version_messages``, every record of a
full-table stream carries the run's version, and once the stream has been read
whole an ACTIVATE_VERSION message names that version: the target then removes (or
marks removed) the rows of older versions, i.e. the rows this run did not send.
The SDK sends its message *before* the records, which would empty the target's
table until they arrive, and leave it partial after a run that fails midway; the
tap sends it after the last record, and only for a stream read whole (not refused,
not failed, every parent's children read). Pipelinewise taps send one at the end
too (and one at the start of a first sync, for targets that show a table only once
a version is active, which SDK targets do not).
"""

from __future__ import annotations

import typing as t
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cached_property
from importlib import resources

import requests
from singer_sdk import RESTStream, SchemaDirectory
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.mapper import RemoveRecordTransform
from singer_sdk.singerlib import ActivateVersionMessage, RecordMessage
from singer_sdk.streams.rest import PageContext
from typing_extensions import override

from tap_smartflo import redact, schemas
from tap_smartflo.errors import (
    QUOTED,
    EndpointError,
    ErrorBodyError,
    LimitRefusedError,
    SmartfloError,
)
from tap_smartflo.normalize import IST, NormalizationError, RecordNormalizer
from tap_smartflo.pagination import PageNumberPaginator, PageSize, SinglePage
from tap_smartflo.prefetch import read_pages

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping

    from singer_sdk import Tap
    from singer_sdk.helpers.types import Context
    from singer_sdk.singerlib import Message

    from tap_smartflo.auth import SmartfloAuth
    from tap_smartflo.custom_fields import CustomFieldColumns
    from tap_smartflo.memory import AccountMemory
    from tap_smartflo.normalize import Converter, Source
    from tap_smartflo.pagination import KeysetPaginator
    from tap_smartflo.prefetch import Send
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
    #: Emits a STATE message with the tap's state now (when it has changed).
    write_state: Callable[[], None]
    #: Emits any Singer message now.
    write_message: Callable[[Message], None]
    #: This run's version of every full-table stream (epoch milliseconds when the
    #: run began: a later run's is greater).
    table_version: int
    #: Contacts' custom-field columns (name -> schema): the input catalog's, else
    #: discovered from the contact groups (once per tap).
    contact_columns: Callable[[], Mapping[str, dict[str, t.Any]]]
    #: What the tap remembers of the account between runs (rate limit, page sizes).
    memory: AccountMemory


class SmartfloStream(RESTStream[t.Any]):
    """A Smartflo list endpoint: pages of ``results``, normalized to the schema.

    A child stream (``parent_stream_type``) is synced once per record of its parent,
    with that record's context. If the first request it makes is refused, it is
    skipped for the rest of the run as a whole stream would be (and so are a refused
    stream's children). Once it has been read, a parent record whose own records
    cannot be read (an error object, a refusal) is named in the log and the rest is
    read on; the run then fails at its end (see ``report``).
    """

    #: Where the records are in a page's body; None: the body itself is the list.
    records_key: str | None = "results"
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
    #: Every run reads every record the endpoint has, so a record missing from a
    #: run is gone (what ACTIVATE_VERSION tells the target). Not so for streams
    #: read from a bookmark, whatever replication method a catalog forces on them.
    reads_whole_table: t.ClassVar[bool] = True

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
    @override
    def effective_schema(self) -> dict[str, t.Any]:
        # Public SDK API, which says to override it to ignore the input schema.
        # The normalizer types every record by the tap's own schema, so that is the
        # schema announced: a catalog that retypes a property (Meltano's `schema`
        # extra) would announce a type the records do not have. The tap names such
        # properties in one log line (tap.py).
        return self.schema

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
                    version=self.record_version,
                    time_extracted=self._extracted_at,
                )

    # Full-table versions (see the module's docstring)

    @property
    @override
    def emit_activate_version_messages(self) -> bool:
        # Public SDK API: the SDK reads it to send its ACTIVATE_VERSION before a
        # full-table stream's records. The tap sends its own after the last record
        # (finish_versions), so the SDK's is always off; the setting of the same
        # name decides the tap's (activates_versions). tests/test_activate_version.py
        # fails if a message comes before a record, or more than once.
        return False

    @cached_property
    def activates_versions(self) -> bool:
        """Whether this run tells the target which of this stream's rows are gone."""
        return (
            self.reads_whole_table
            and self.replication_method == "FULL_TABLE"
            and bool(self.config.get("emit_activate_version_messages"))
            # The SDK's BATCH files carry no version: activating one would tell
            # the target that every row it holds is gone.
            and not self.writes_batches
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

    @cached_property
    def record_version(self) -> int | None:
        """The version this run's records carry (None: the stream has none)."""
        return self.services.table_version if self.activates_versions else None

    def finish_versions(self) -> None:
        """After a read of the whole stream: activate its version, and its children's.

        A child (broadcast leads) is read once per parent record, so it is finished
        here, by its parent, after the last one; only if it was read in this run
        (its SCHEMA went out) and every parent record's records were read.
        """
        report = self.services.report
        for stream in [self, *t.cast("list[SmartfloStream]", self.child_streams)]:
            if (
                stream.selected
                and stream.activates_versions
                and stream.read_in_this_run
                and stream.name not in report.skipped
                and stream.name not in report.unread
            ):
                stream.activate_version()

    def activate_version(self) -> None:
        """Tell the target this run's version of the stream is complete."""
        version = t.cast("int", self.record_version)
        for stream_map in self.stream_maps:
            if not isinstance(stream_map, RemoveRecordTransform):
                self.services.write_message(
                    ActivateVersionMessage(
                        stream=stream_map.stream_alias, version=version
                    )
                )
        self.logger.info(
            "Read '%s' whole: ACTIVATE_VERSION %d sent (the target may now remove the "
            "rows this run did not send)",
            self.name,
            version,
        )

    def new_paginator(self) -> PageNumberPaginator | KeysetPaginator | SinglePage:
        """A fresh paginator for this endpoint (page numbers unless overridden)."""
        return PageNumberPaginator(self.sizing)

    @cached_property
    def sizing(self) -> PageSize:
        """What the endpoint is asked for a page, and what it has shown it serves.

        At most page_size (and the documented maximum, if any, which the tap
        takes as proof of what the endpoint serves), and at most what an earlier
        run learned the endpoint serves.
        """
        size = int(self.config["page_size"])
        if self.max_page_size is not None:
            size = min(size, self.max_page_size)
        return PageSize(
            size,
            remembered=self.services.memory.page_sizes.get(self.path),
            documented=self.max_page_size,
        )

    @property
    def page_size(self) -> int:
        """The ``limit`` to ask for now."""
        return t.cast("int", self.sizing.limit)

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
        return {"limit": 1}

    def iter_pages(
        self, context: Context | None
    ) -> Iterator[tuple[dict[str, t.Any], list[t.Any]]]:
        """Yield (body, raw records) for every page, in page order (see prefetch).

        A server that refuses the ``limit`` at the first page is asked again for
        fewer records a page (see ``PageSize.refused``), with one warning.
        """
        transport = self.services.transport
        path = self.path_for(context)

        def request(token: object) -> Send:
            prepared = self.prepare_page(context, token)
            what = path if token is None else f"{path} (page {token})"
            return lambda cancelled: transport.fetch(
                prepared,
                stream=self.name,
                path=path,
                records_key=self.records_key,
                what=what,
                cancelled=cancelled,
            )

        while True:
            received = False
            try:
                for page in read_pages(
                    request,
                    self.new_paginator(),
                    workers=int(self.config["max_concurrent_requests"]),
                    pace=lambda: transport.pacer.interval,
                ):
                    received = True
                    yield page
            except LimitRefusedError as exc:
                # The same limit goes with every page: a server refuses it at the
                # first. Once pages were read, the records already out fix where
                # the query stands, so the run fails rather than guess.
                if received or not self._ask_less(exc, path):
                    raise
            else:
                return

    def _remember_page_size(self) -> None:
        """Keep what the pages proved the endpoint serves, for the next runs."""
        memory = self.services.memory
        learned = self.sizing.learned
        if learned is not None and memory.page_sizes.get(self.path) != learned:
            memory.remember_page_size(self.path, learned)

    def _ask_less(self, refusal: LimitRefusedError, path: str) -> bool:
        """Step the page size down after ``refusal``; whether there was a step."""
        refused = self.sizing.limit
        limit = self.sizing.refused(refusal.numbers)
        if limit is None:
            return False
        self.logger.warning(
            "%s refused limit=%s (HTTP %d%s): the tap asks for %d records a page "
            "from now on (and in the next runs, once a page has held that many)",
            path,
            refused,
            refusal.status,
            refusal.said,
            limit,
        )
        return True

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
            self.finish_versions()

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
        """The records of every page of the query for ``context``, each once.

        Pages can overlap (records shift while they are read): a record whose key
        one of the last OVERLAP_PAGES pages of the query gave is not emitted again,
        unless it is a newer version (a later replication key: it changed while the
        pages were read), and one warning says how many were skipped. Only those
        pages' keys are kept: a shift moves records to a neighbouring page, and
        keeping every key of a long query cost a third more CPU (the garbage
        collector walks them) and 20 MB a 100 000 records.
        """
        normalize = self.normalizer
        keys = self.primary_keys or ()
        #: For each recent page: key -> replication key value (None without one).
        recent: deque[dict[t.Any, t.Any]] = deque(maxlen=OVERLAP_PAGES)
        skipped = 0
        with self.get_http_request_counter() as request_counter:
            request_counter.with_context(context)
            for _body, records in self.iter_pages(context):
                page: dict[t.Any, t.Any] = {}
                recent.append(page)
                request_counter.increment()
                self._pages_received += 1
                self._remember_page_size()
                self.services.memory.flush()  # what the pages taught, in the STATE
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
                            f"{', '.join(keys)}: {redact.clip(str(raw), QUOTED)}"
                        )
                        raise SmartfloError(msg)
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
        if unknown := normalize.newly_unknown():
            self.logger.info(
                "Fields in %s that the schema does not have (left out): %s",
                self.path,
                ", ".join(unknown),
            )


class UnpagedStream(SmartfloStream):
    """An endpoint that answers all its records at once: one request, no parameters.

    Sending ``limit`` or ``page`` to it could only do harm: a server that honoured
    an undocumented ``limit`` would cut the list short without saying so.
    """

    @override
    def new_paginator(self) -> SinglePage:
        return SinglePage()

    @override
    def get_url_params(
        self, context: Context | None, next_page_token: t.Any
    ) -> dict[str, t.Any]:
        return {}

    @override
    def access_check_params(self) -> dict[str, t.Any]:
        return {}


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
