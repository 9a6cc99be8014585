"""SmartfloStream: everything the tap's streams share about talking to Smartflo."""

from __future__ import annotations

import logging
import os
import threading
import time
import typing as t
from collections import deque
from concurrent.futures import Future
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from functools import cached_property
from http import HTTPStatus
from importlib import resources

import msgspec
import requests
from singer_sdk import RESTStream, SchemaDirectory
from singer_sdk.exceptions import FatalAPIError, RetriableAPIError
from singer_sdk.helpers._catalog import pop_deselected_record_properties
from singer_sdk.helpers._util import utc_now
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.singerlib import RecordMessage
from typing_extensions import override

from tap_smartflo import schemas
from tap_smartflo.normalize import (
    IST,
    UTC,
    NormalizationError,
    RecordNormalizer,
    format_utc,
    parse_time,
)
from tap_smartflo.pagination import PageNumberPaginator
from tap_smartflo.retry import RetryAtOnceError

if t.TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from singer_sdk import Tap
    from singer_sdk.helpers.types import Context

    from tap_smartflo.auth import SmartfloAuth
    from tap_smartflo.normalize import Converter, Source
    from tap_smartflo.pacing import Pacer
    from tap_smartflo.pagination import KeysetPaginator
    from tap_smartflo.retry import RetryPolicy

SCHEMAS = SchemaDirectory(resources.files(schemas))
#: Pages are parsed with msgspec (three times faster than requests' own parser);
#: decimals stay exact.
_JSON = msgspec.json.Decoder(float_hook=Decimal)

#: Where a stream's state remembers the versions it emitted near its bookmark, and
#: how many at most (the state stays small whatever the data).
EMITTED_KEY = "emitted_near_bookmark"
REMEMBER_AT_MOST = 1000

#: Fetch pages ahead once waiting for a page takes this share of writing one, and
#: at least SLOW_WAIT seconds: below that, threads cost more than they hide.
NETWORK_SHARE = 0.5
SLOW_WAIT = 0.005

#: The format of ``updated_after`` and similar query times: naive wall-clock time.
#: The tap sends UTC wall-clock time. A server that reads it as UTC gets exactly what
#: was meant; one that reads it as IST (UTC+05:30, Smartflo's home) is asked for
#: 5.5 hours *more*, never less. The tap drops what falls before the bound it meant.
QUERY_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def query_time(moment: datetime, zone: timezone = UTC) -> str:
    """Format a time for a Smartflo query parameter, as wall-clock time in ``zone``."""
    return moment.astimezone(zone).strftime(QUERY_TIME_FORMAT)


class SmartfloError(FatalAPIError):
    """A permanent failure, with a message that says what to fix."""


class EndpointError(SmartfloError):
    """The API refuses one endpoint (403, 404) while others may work."""

    def __init__(self, message: str, *, status: int, path: str) -> None:
        """Say why, with the HTTP status and the path it answered."""
        super().__init__(message)
        self.status = status
        self.path = path


#: Written into a stream's state once the stream has read a page, so a later run
#: can tell "this token lost access" from "this account never had the feature".
EXTRACTED_KEY = "extracted"


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
    def __init__(self, tap: Tap) -> None:
        super().__init__(tap)
        self._extracted_at = utc_now()  # when the page being written arrived
        self._pages_received = 0
        self._requests_session = _session_for(
            self.url_base, connections=int(self.config["max_concurrent_requests"])
        )

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
        return t.cast("t.Any", self._tap).authenticator

    @property
    @override
    def http_headers(self) -> dict[str, str]:
        return {"Accept": "application/json"}

    @property
    @override
    def timeout(self) -> float:  # type: ignore[override]
        # A float, unlike the SDK's int: request_timeout may be fractional.
        return float(self.config["request_timeout"])

    @cached_property
    def normalizer(self) -> RecordNormalizer:
        """The function that turns an API object into a schema-valid record.

        It keeps only the properties selected in the catalog, so records leave
        already pruned and typed (see ``_generate_record_messages``).
        """
        selected = [
            name
            for name in self.schema["properties"]
            if self.mask[("properties", name)]
        ]
        return RecordNormalizer(
            self.schema,
            naive_tz=self.naive_tz,
            overrides=self.converter_overrides,
            derived=self.derived_fields,
            only=selected,
        )

    @override
    def _generate_record_messages(
        self, record: dict[str, t.Any]
    ) -> t.Generator[RecordMessage, None, None]:
        # The SDK would prune deselected properties and conform types here, on
        # every record: the normalizer already did both (the tests validate every
        # record against the schema), and this was a third of the SDK's cost per
        # record. Nested deselections, which the normalizer does not prune, still
        # go through the SDK's pruning.
        if self._prune_nested:
            pop_deselected_record_properties(record, self.schema, self.mask)
        for stream_map in self.stream_maps:
            mapped = stream_map.transform(record)
            if mapped is not None:
                yield RecordMessage(
                    stream=stream_map.stream_alias,
                    record=mapped,
                    version=self._stream_version,
                    time_extracted=self._extracted_at,
                )

    @cached_property
    def _prune_nested(self) -> bool:
        """Whether the catalog deselects a property inside another property."""
        return any(
            not selected
            for breadcrumb, selected in self.mask.items()
            if len(breadcrumb) > 2  # noqa: PLR2004 (("properties", name) is top level)
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

    @property
    def retry_policy(self) -> RetryPolicy:
        """The tap's retry policy (one for all streams)."""
        return t.cast("t.Any", self._tap).retry_policy

    @property
    def pacer(self) -> Pacer:
        """The tap's pacer: one account, one rate limit, for all streams."""
        return t.cast("t.Any", self._tap).pacer

    def prepare_page(
        self,
        context: Context | None,
        token: t.Any,  # noqa: ANN401
    ) -> requests.PreparedRequest:
        """Build the request for the page ``token``."""
        return self._prepare_request(
            context=context, page=t.cast("t.Any", _Token(token))
        )

    def fetch_page(
        self,
        prepared: requests.PreparedRequest,
        context: Context | None,
        what: str,
        cancelled: threading.Event | None = None,
    ) -> dict[str, t.Any]:
        """Send ``prepared`` and return the parsed body, retrying transient faults."""

        def attempt() -> dict[str, t.Any]:
            if cancelled is not None and cancelled.is_set():
                raise _CancelledError
            started = self.pacer.wait()
            try:
                body = self._send_and_parse(prepared, context)
            except RetriableAPIError as exc:
                if _status(exc) == HTTPStatus.TOO_MANY_REQUESTS:
                    self.pacer.throttled(started)
                raise
            self.pacer.succeeded(started)
            return body

        return self.retry_policy.run(attempt, what=what, cancelled=cancelled)

    def _send_and_parse(
        self, prepared: requests.PreparedRequest, context: Context | None
    ) -> dict[str, t.Any]:
        if self.logger.isEnabledFor(logging.DEBUG):
            # The headers as they will be sent: the secret in them is masked in
            # every log record (see redact).
            self.authenticator(prepared)
            self.logger.debug(
                "%s %s headers=%s",
                prepared.method,
                prepared.url,
                dict(prepared.headers),
            )
        response = self._request(prepared, context)
        try:
            body = _JSON.decode(response.content)
        except ValueError as exc:
            msg = (
                f"{self.path} answered {response.status_code} with a body that is "
                "not complete JSON"
            )
            raise RetriableAPIError(msg, response) from exc
        if not isinstance(body, dict) or not isinstance(
            body.get(self.records_key), list
        ):
            said = body.get("message") if isinstance(body, dict) else None
            msg = (
                f"{self.path} answered without a '{self.records_key}' list"
                + (f": {str(said)[:200]}" if said else "")
                + " (this does not look like a Smartflo page: check api_url)"
            )
            raise SmartfloError(msg)
        self.authenticator.worked(response.request)
        return body

    def iter_pages(
        self, context: Context | None
    ) -> Iterator[tuple[dict[str, t.Any], list[t.Any]]]:
        """Yield (body, raw records) for every page, in page order.

        Page numbers are known in advance, so when the network, not the tap, is
        what takes time, pages are fetched while earlier ones are written. The tap
        starts one page at a time (an incremental run of one page costs one
        request, and threads would only slow a fast API down). Once waiting on a
        page takes more than half as long as writing one (and more than a few
        milliseconds), it keeps a page in flight, and doubles the pages in flight (up to
        ``max_concurrent_requests``) whenever it still waits that long. With one
        page ahead nothing is wasted: a full page means the next one is needed
        (more records, or the empty page that ends the data). With more ahead, up
        to that many minus one requests may go past the last page. Each page is
        judged (end, repeat) before its records are emitted.
        """
        paginator = self.new_paginator()
        workers = int(self.config["max_concurrent_requests"])
        if not isinstance(paginator, PageNumberPaginator) or workers == 1:
            yield from self._iter_pages_in_turn(context, paginator)
            return
        cancelled = threading.Event()
        in_flight: deque[Future[dict[str, t.Any]]] = deque()
        ahead = 0
        waits, writes = _RecentMean(), _RecentMean()
        token: int | None = paginator.start
        last_requested = 0
        try:
            while token is not None:
                waiting_since = time.monotonic()
                body = (
                    in_flight.popleft().result()
                    if in_flight
                    else self.fetch_page(
                        self.prepare_page(context, token), context, self._what(token)
                    )
                )
                waited = time.monotonic() - waiting_since
                last_requested = max(last_requested, token)
                records = body[self.records_key]
                next_token = paginator.next_token(token, body, records)
                writing_since = time.monotonic()
                yield body, records
                written = time.monotonic() - writing_since
                if token > paginator.start:  # the first request also connects
                    waits.add(waited)
                    writes.add(written)
                    if next_token is not None and waits.mean > max(
                        SLOW_WAIT, writes.mean * NETWORK_SHARE
                    ):
                        ahead = min(max(1, ahead * 2), workers)
                while next_token is not None and len(in_flight) < ahead:
                    # None: the paginator knows the data ends before that page
                    # (a page it does need is then fetched in turn, above).
                    if (following := paginator.after(last_requested)) is None:
                        break
                    last_requested = following
                    prepared = self.prepare_page(context, last_requested)
                    what = self._what(last_requested)
                    in_flight.append(
                        _in_background(
                            self.fetch_page, prepared, context, what, cancelled
                        )
                    )
                token = next_token
        finally:
            cancelled.set()

    def _what(self, token: object) -> str:
        return f"{self.path} (page {token})"

    def _iter_pages_in_turn(
        self, context: Context | None, paginator: PageNumberPaginator | KeysetPaginator
    ) -> Iterator[tuple[dict[str, t.Any], list[t.Any]]]:
        # The first token may be None (a keyset's "from the start"); after that,
        # None means there is no next page.
        token: t.Any = paginator.start
        while True:
            prepared = self.prepare_page(context, token)
            body = self.fetch_page(prepared, context, self._what(token))
            records = body[self.records_key]
            # Judged before the records leave: a repeated page is never emitted.
            token = paginator.next_token(token, body, records)
            yield body, records
            if token is None:
                return

    @override
    def get_records(self, context: Context | None) -> t.Iterable[dict[str, t.Any]]:
        """The stream's records; an endpoint refused from the start skips the stream.

        A token may lack permission for one endpoint (and a server may lack one),
        which should not stop the others: the stream is skipped with a warning, and
        the run fails only when every selected stream was skipped (a wrong api_url).
        An endpoint refused after it served pages still stops the run.
        """
        extracted_before = self._extracted_before()
        try:
            yield from super().get_records(context)
        except EndpointError as exc:
            if self._pages_received:
                raise
            tap = t.cast("t.Any", self._tap)
            skipped = tap.skipped_streams
            skipped[self.name] = str(exc)
            selected = {s.name for s in self._tap.streams.values() if s.selected}
            if selected <= set(skipped):
                raise SmartfloError("; ".join(sorted(set(skipped.values())))) from None
            if extracted_before:
                # A token that lost access must not hide in a green run: the
                # other streams go on, and the run fails at the end.
                tap.lost_streams[self.name] = _lost_message(self.name, exc)
                self.logger.warning(
                    "Stream '%s' was extracted before but is refused now: %s",
                    self.name,
                    exc,
                )
                return
            self.logger.warning(
                "Skipping stream '%s': %s. Deselect it in the catalog if this is "
                "expected.",
                self.name,
                exc,
            )
        else:
            if self._pages_received:
                self.stream_state[EXTRACTED_KEY] = True

    def _extracted_before(self) -> bool:
        """Whether the incoming state shows that an earlier run read this stream."""
        state = self.stream_state
        return bool(
            state.get(EXTRACTED_KEY) or state.get("replication_key_value") is not None
        )

    @override
    def request_records(self, context: Context | None) -> t.Iterable[dict]:
        normalize = self.normalizer
        keys = self.primary_keys or ()
        with self.get_http_request_counter() as request_counter:
            request_counter.with_context(context)
            for _body, records in self.iter_pages(context):
                request_counter.increment()
                self._pages_received += 1
                self._extracted_at = utc_now()
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

    # Errors

    @override
    def validate_response(self, response: requests.Response) -> None:
        status = response.status_code
        if status in {HTTPStatus.UNAUTHORIZED, HTTPStatus.FORBIDDEN}:
            if self.authenticator.renew_after_refusal(response.request):
                msg = f"HTTP {status} on {self.path}: renewing the token"
                raise RetryAtOnceError(msg, response)
            if status == HTTPStatus.UNAUTHORIZED:
                raise SmartfloError(self._refusal_message(response))
            raise EndpointError(
                self._refusal_message(response), status=status, path=self.path
            )
        if status == HTTPStatus.NOT_FOUND:
            msg = (
                f"Smartflo answered HTTP 404 on {self.path}: this server does not "
                "have the endpoint (check api_url)"
            )
            raise EndpointError(msg, status=status, path=self.path)
        if (
            status in self.extra_retry_statuses
            or status >= HTTPStatus.INTERNAL_SERVER_ERROR
        ):
            raise RetriableAPIError(self.response_error_message(response), response)
        if status >= HTTPStatus.BAD_REQUEST:
            msg = f"Smartflo refused the request (HTTP {status} on {self.path})"
            raise SmartfloError(msg + _server_message(response))

    def _refusal_message(self, response: requests.Response) -> str:
        credential = self.authenticator.credential
        said = _server_message(response)
        if response.status_code == HTTPStatus.UNAUTHORIZED:
            return (
                f"Smartflo refused the credentials (HTTP 401 on {self.path}{said}): "
                f"check that {credential} is valid and not expired"
            )
        return (
            f"Smartflo answered HTTP 403 on {self.path}{said}: either the "
            f"{credential} has no permission for this endpoint, or api_url or the "
            "path is wrong (Smartflo answers 403 for paths it does not know)"
        )

    @override
    def response_error_message(self, response: requests.Response) -> str:
        return f"HTTP {response.status_code} on {self.path}" + _server_message(response)


def _session_for(url: str, connections: int) -> requests.Session:
    """A session that reads proxy and CA settings from the environment once.

    requests otherwise scans the whole environment for proxies on every request,
    which costs more CPU than parsing the page. It keeps a connection alive for
    each concurrent request.
    """
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_maxsize=max(10, connections))
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.proxies.update(requests.utils.get_environ_proxies(url))
    session.verify = (
        os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    )
    session.trust_env = False
    return session


def _in_background(
    function: t.Callable[..., dict[str, t.Any]], *args: t.Any
) -> Future[dict[str, t.Any]]:
    """Run ``function`` in a daemon thread, its outcome in the returned future.

    Pages no longer wanted never hold up the end of a stream or the exit, as a
    thread pool's workers would.
    """
    future: Future[dict[str, t.Any]] = Future()

    def run() -> None:
        try:
            future.set_result(function(*args))
        except BaseException as exc:  # noqa: BLE001 (handed to the waiting thread)
            future.set_exception(exc)

    threading.Thread(target=run, daemon=True).start()
    return future


class _RecentMean:
    """A mean that forgets (exponentially weighted): steady against one slow page."""

    def __init__(self) -> None:
        self.mean = 0.0
        self._empty = True

    def add(self, value: float) -> None:
        self.mean = value if self._empty else 0.7 * self.mean + 0.3 * value
        self._empty = False


class _CancelledError(Exception):
    """The page is no longer wanted (the stream ended or failed)."""


def _status(exc: RetriableAPIError) -> int | None:
    response = exc.response
    return None if response is None else response.status_code


class _Token:
    """The minimal paginator shape ``RESTStream._prepare_request`` reads."""

    def __init__(self, value: object) -> None:
        self.current_value = value


def _lost_message(stream: str, exc: EndpointError) -> str:
    return (
        f"Stream '{stream}' was extracted before, but Smartflo now refuses it "
        f"(HTTP {exc.status} on {exc.path}): the token may have lost access to it. "
        f"If that is intended, deselect it (meltano select tap-smartflo --exclude "
        f"{stream} '*', or \"selected\": false in the catalog)"
    )


def _server_message(response: requests.Response) -> str:
    """The API's own ``message``, when it sent one (bodies never carry secrets)."""
    try:
        message = response.json().get("message")
    except (ValueError, AttributeError):
        return ""
    return f": {str(message)[:200]}" if message else ""


class IncrementalSmartfloStream(SmartfloStream):
    """A stream bookmarked on a time whose bookmark never moves backwards.

    Results come in no usable order, so the stream is unsorted: the SDK promotes the
    bookmark at the end of the stream. The tap seeds that bookmark with the previous
    one, so a run that sees only older records never moves it back.
    """

    is_sorted = False

    @property
    def lookback(self) -> timedelta:
        """How far before the previous bookmark a run starts reading again."""
        return timedelta(minutes=float(self.config["lookback_minutes"]))

    def replicate_from(self, context: Context | None) -> datetime | None:
        """The earliest replication-key time this run must emit, or None for all.

        The previous bookmark minus the lookback, but never before ``start_date``;
        ``start_date`` alone on a first sync. Fixed for the run once asked.
        """
        if getattr(self, "_replicate_from", False) is not False:
            return t.cast("datetime | None", self._replicate_from)
        bounds = []
        if start_date := self.config.get("start_date"):
            bounds.append(t.cast("datetime", parse_time(start_date, naive_tz=UTC)))
        if bookmark := self._previous_bookmark(context):
            bounds.append(bookmark - self.lookback)
        self._replicate_from: datetime | None = max(bounds) if bounds else None
        return self._replicate_from

    def _previous_bookmark(self, context: Context | None) -> datetime | None:
        state = self.get_context_state(context)
        if state.get("replication_key") != self.replication_key:
            return None
        return parse_time(state.get("replication_key_value"))

    def _progress_markers(self, context: Context | None) -> dict[str, t.Any]:
        """This run's progress markers, which the SDK promotes to the bookmark."""
        state = self.get_context_state(context)
        markers = state.setdefault(
            "progress_markers", {"Note": "Progress is not resumable if interrupted."}
        )
        markers["replication_key"] = self.replication_key
        return t.cast("dict[str, t.Any]", markers)

    def _seed_bookmark(self, context: Context | None) -> None:
        """Start this run's bookmark at the previous one, so it can only move on."""
        bookmark = self._previous_bookmark(context)
        if bookmark is None:
            return
        self._progress_markers(context)["replication_key_value"] = format_utc(bookmark)

    def _advance_bookmark(self, context: Context | None, moment: datetime) -> None:
        """Move the bookmark to ``moment`` now (never back) and emit it in a STATE.

        For a caller that has emitted every record before ``moment``: the progress is
        durable at once, so a run that fails later resumes from here.
        """
        value = format_utc(moment)
        markers = self._progress_markers(context)
        if _earlier(markers.get("replication_key_value"), moment):
            markers["replication_key_value"] = value
        state = self.get_context_state(context)
        if state.get("replication_key") != self.replication_key or _earlier(
            state.get("replication_key_value"), moment
        ):
            state["replication_key"] = self.replication_key
            state["replication_key_value"] = value
            self.state_manager.is_flushed = False
            self._write_state_message()


def _earlier(value: str | None, moment: datetime) -> bool:
    """Whether the bookmark ``value`` is missing or before ``moment``."""
    return value is None or t.cast("datetime", parse_time(value)) < moment


class UpdatedAfterStream(IncrementalSmartfloStream):
    """A stream filtered with ``updated_after`` and bookmarked on ``updated_at``.

    Each run re-reads the lookback before the previous bookmark, for changes
    committed late. So that the overlap is re-read but not re-emitted, the state
    remembers which version (``updated_at``) of each record near the bookmark the
    run emitted; the next run skips exactly those versions, and emits anything new
    or changed in the overlap. Only the newest REMEMBER_AT_MOST are remembered:
    beyond that, the overlap is emitted again (at least once, never lost).
    """

    replication_key = "updated_at"

    @override
    def get_url_params(
        self, context: Context | None, next_page_token: t.Any
    ) -> dict[str, t.Any]:
        params = super().get_url_params(context, next_page_token)
        if (after := self.replicate_from(context)) is not None:
            # One second earlier, in case the server compares exclusively.
            params["updated_after"] = query_time(after - timedelta(seconds=1))
        return params

    @override
    def request_records(self, context: Context | None) -> t.Iterable[dict]:
        self._seed_bookmark(context)
        after = self.replicate_from(context)
        floor = None if after is None else format_utc(after)
        key = self.replication_key
        state = self.get_context_state(context)
        emitted_before = state.get(EMITTED_KEY)
        if not isinstance(emitted_before, dict):
            emitted_before = {}
        emitted: dict[str, str] = {}
        for record in super().request_records(context):
            value = record[key]
            # Servers may read updated_after in another zone and send more: keep
            # only what this run asked for (string order is time order in UTC).
            if floor is not None and value is not None and value < floor:
                continue
            if value is not None:
                identity = self._identity(record)
                if emitted_before.get(identity) == value:
                    continue  # the last run emitted this very version
                emitted[identity] = value
                if len(emitted) > 4 * REMEMBER_AT_MOST:
                    emitted = self._near_bookmark(emitted, max(emitted.values()))
            yield record
        newest = max([*emitted.values(), state.get("replication_key_value") or ""])
        if newest:
            remembered = self._near_bookmark({**emitted_before, **emitted}, newest)
            state[EMITTED_KEY] = remembered

    def _identity(self, record: dict[str, t.Any]) -> str:
        return "|".join(str(record[k]) for k in self.primary_keys or ())

    def _near_bookmark(self, versions: dict[str, str], newest: str) -> dict[str, str]:
        """The newest REMEMBER_AT_MOST versions within the lookback of ``newest``."""
        horizon = format_utc(t.cast("datetime", parse_time(newest)) - self.lookback)
        near = sorted(
            ((v, k) for k, v in versions.items() if str(v) >= horizon), reverse=True
        )
        return {k: v for v, k in near[:REMEMBER_AT_MOST]}
