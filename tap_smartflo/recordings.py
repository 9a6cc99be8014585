"""Call recordings: each answered call's audio, archived once, byte for byte.

A call record's ``recording_url`` is a tokenised link that expires within minutes.
The ``call_recordings`` stream (a child of ``call_records``) downloads each one as
its call is read, into the archive (``archive``), and emits one record per file.

- **Whole or not at all.** The audio streams in chunks into a temporary file; a
  download that ends with fewer bytes than ``Content-Length`` (a reset, a body cut
  short) is retried, never published.
- **A link that expired** (403, 410) is refreshed: the call is read again with the
  ``call_id`` filter (and a one-second window around its start, since a filter
  the API ignores must not return the whole account), and the download retried.
- **Once.** A recording already in the archive is not downloaded again. Its record
  went out before the STATE this run started from if the file was written before
  that STATE's ``settled_at`` (the time the last record of an archived recording
  went out); otherwise (a run killed between the file and its STATE) its record
  is emitted again, its sha256 read back from the archive.
- **Not lost.** A recording that still fails after its retries is kept in the
  STATE (``pending``: its call's id, ``call_id`` and start, never its link) and tried
  again in the next run, even when its call has left the lookback window; the
  run's summary counts them.
- **Polite and safe.** Every download waits on the pacer the API requests wait on.
  Links are fetched with a session of their own, which has no credentials: the API
  token never travels to the recording host. A link never enters a log line, an
  error, a stream context (the SDK logs contexts) or the STATE.
"""

from __future__ import annotations

import contextlib
import typing as t
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import cached_property
from http import HTTPStatus

import requests
from singer_sdk.exceptions import RetriableAPIError
from typing_extensions import override

from tap_smartflo.archive import EXTENSIONS, Archive, Upload, archive_path
from tap_smartflo.client import SmartfloStream
from tap_smartflo.errors import (
    EndpointError,
    ErrorBodyError,
    GaveUpError,
    RetryAtOnceError,
    SmartfloError,
)
from tap_smartflo.normalize import IST, format_utc, parse_time, query_time
from tap_smartflo.transport import make_session

if t.TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping

    from singer_sdk.helpers.types import Context

    from tap_smartflo.pacing import Pacer
    from tap_smartflo.report import RunReport
    from tap_smartflo.retry import RetryPolicy
    from tap_smartflo.transport import Transport

STREAM = "call_recordings"
ARCHIVE_URL = "recordings_archive_url"
CALLS_PATH = "/v1/call/records"
#: Fresh links asked for one recording in one run, at most.
MAX_REFRESHES = 3
#: Bytes read at a time from a recording link.
CHUNK = 1 << 16
#: Recordings in a row that outlast their retries before the run stops trying the
#: rest (kept for the next run): a recording host that is down would otherwise
#: cost retry_max_seconds for every recording.
GIVE_UP_AFTER = 3
#: The STATE's keys (in the stream's bookmark): recordings to try again, and when
#: the last archived recording's record went out.
PENDING_KEY = "pending"
SETTLED_KEY = "settled_at"
#: An object store's clock is not this machine's, and S3 writes whole seconds: a
#: file written this close to ``settled_at`` is taken for one written after it.
REMOTE_CLOCK_MARGIN = timedelta(seconds=5)
#: The content type a file found in the archive had, by its extension.
CONTENT_TYPES = {ext: kind for kind, ext in reversed(list(EXTENSIONS.items()))}


class Kept(t.NamedTuple):
    """A recording in the archive, as its record tells it."""

    path: str
    sha256: str
    size: int
    content_type: str | None


class RecordingError(SmartfloError):
    """A recording that cannot be archived in this run (the next run tries again)."""


class ShortDownloadError(RetriableAPIError):
    """A download that ended before all the bytes its answer announced."""


def archive_setting_error(config: Mapping[str, t.Any], *, selected: bool) -> str | None:
    """Why a run cannot archive recordings (None: it can, or need not)."""
    if selected and not config.get(ARCHIVE_URL):
        return (
            f"The {STREAM} stream is selected but {ARCHIVE_URL} is not set: set it to "
            "where the audio goes (file:///srv/calls, s3://bucket/prefix), or "
            f"deselect {STREAM}"
        )
    return None


@dataclass(frozen=True)
class Recording:
    """One call's recording: which call, and its tokenised link (never shown)."""

    call_record_id: str
    call_id: str | None
    started_at: datetime
    #: The link as the API gave it (None: read the call again for one).
    link: str | None = field(default=None, repr=False)

    @property
    def what(self) -> str:
        """The recording as log lines and errors name it (no link)."""
        return f"The recording of call {self.call_record_id}"

    def remembered(self) -> dict[str, t.Any]:
        """What the STATE keeps of it to try again: the call, not the link."""
        return {"call_id": self.call_id, "started_at": format_utc(self.started_at)}


def recording_of(record: Mapping[str, t.Any]) -> Recording | None:
    """The recording of a call record (None: a missed call, or no link yet)."""
    link, started = record.get("recording_url"), record.get("started_at")
    if not link or not started or record.get("id") is None:
        return None
    return Recording(
        str(record["id"]),
        record.get("call_id"),
        t.cast("datetime", parse_time(started)),
        str(link),
    )


def pending_recordings(
    saved: object, warn: t.Callable[[str], None]
) -> dict[str, Recording]:
    """The recordings an earlier run left to try again (the STATE is input)."""
    if saved is None:
        return {}
    found: dict[str, Recording] = {}
    entries = saved if isinstance(saved, dict) else {}
    for key, entry in entries.items():
        try:
            started = parse_time(entry["started_at"])
            call_id = entry.get("call_id")
            if started is None or not isinstance(call_id, str | None):
                raise TypeError  # noqa: TRY301 (one path for every malformed entry)
        except (TypeError, KeyError, AttributeError, ValueError):
            warn(
                f"The state's recording to try again for call {key!r} is malformed: "
                "ignored (the lookback still reads calls of the last hours)"
            )
            continue
        found[str(key)] = Recording(str(key), call_id, started)
    if not isinstance(saved, dict):
        warn(
            f"The state's '{PENDING_KEY}' recordings are not an object: ignored (the "
            "lookback still reads calls of the last hours)"
        )
    return found


class LinkSource(t.Protocol):
    """Where a fresh link for a recording comes from."""

    def fresh_link(self, recording: Recording) -> str | None:
        """The call's current ``recording_url`` (None: it has none)."""


@dataclass(kw_only=True)
class CallLinks:
    """Fresh recording links: the call read again, with its ``call_id``."""

    transport: Transport
    api_url: str

    def fresh_link(self, recording: Recording) -> str | None:
        """The call's current ``recording_url`` (None: it has none, or is gone).

        One request, paced and retried as every API request. Unknown parameters
        are ignored by the API, so the window around the call's start keeps the
        answer small even if ``call_id`` is not applied; the call is picked by id.
        """
        start = recording.started_at
        params: dict[str, t.Any] = {
            "from_date": query_time(start - timedelta(seconds=1), IST),
            "to_date": query_time(start + timedelta(seconds=1), IST),
            # A page that holds the few calls of those two seconds.
            "limit": 10,
            "page": 1,
        }
        if recording.call_id:
            params["call_id"] = recording.call_id
        prepared = requests.Request(
            "GET",
            self.api_url.rstrip("/") + CALLS_PATH,
            params=params,
            headers={"Accept": "application/json"},
        ).prepare()
        _body, records = self.transport.fetch(
            prepared,
            stream=STREAM,
            path=CALLS_PATH,
            records_key="results",
            what=f"{CALLS_PATH} (a fresh link for call {recording.call_record_id})",
        )
        for raw in records:
            if isinstance(raw, dict) and str(raw.get("id")) == recording.call_record_id:
                return str(raw["recording_url"]) if raw.get("recording_url") else None
        return None


@dataclass(kw_only=True)
class Downloader:
    """Downloads a recording into the archive: paced, retried, checked whole."""

    #: A session of its own, without credentials (the link's token is its own).
    session: requests.Session
    pacer: Pacer
    retry: RetryPolicy
    report: RunReport
    links: LinkSource
    #: Seconds to wait for each part of an answer.
    timeout: float

    def download(
        self, recording: Recording, archive: Archive
    ) -> tuple[Upload, str | None]:
        """The recording, complete in a temporary file, and its content type.

        Raises:
            RecordingError: when the link cannot be had or answers for good.
            GaveUpError: when the retries outlast their budget.
        """
        link = recording.link
        refreshed = 0
        tries = 0

        def attempt() -> tuple[Upload, str | None]:
            nonlocal link, refreshed, tries
            if link is None:
                if refreshed >= MAX_REFRESHES:
                    msg = (
                        f"{recording.what}: its link kept expiring ({refreshed} times)"
                    )
                    raise RecordingError(msg)
                refreshed += 1
                link = self.links.fresh_link(recording)
                if link is None:
                    msg = f"{recording.what}: the call has no recording_url now"
                    raise RecordingError(msg)
            started = self.pacer.wait()
            tries += 1
            self.report.sent(STREAM, retry=tries > 1)
            try:
                response = self.session.get(
                    link,
                    stream=True,
                    timeout=self.timeout,
                    # The bytes as stored: Content-Length then counts them.
                    headers={"Accept-Encoding": "identity"},
                )
            except requests.exceptions.RequestException as exc:
                if isinstance(exc, _TRANSIENT):
                    raise
                # Its text quotes the link: only its kind is told.
                kind = type(exc).__name__
                msg = f"{recording.what}: the link cannot be fetched ({kind})"
                raise RecordingError(msg) from None
            with contextlib.closing(response):
                try:
                    self._judge(recording, response, started)
                except RetryAtOnceError:
                    link = None  # expired: the next try reads the call again
                    raise
                return self._receive(recording, response, archive)

        return self.retry.run(attempt, what=recording.what)

    def _judge(
        self, recording: Recording, response: requests.Response, started: float
    ) -> None:
        """Raise what an answer other than 200 means; tell the pacer how it went.

        Raises:
            RetryAtOnceError: for an expired link (403, 410): read the call again.
            RetriableAPIError: for 429 and 5xx.
            RecordingError: for any other status.
        """
        status = response.status_code
        if status == HTTPStatus.TOO_MANY_REQUESTS:
            self.pacer.throttled(started)
            self.report.throttled(STREAM)
        else:
            self.pacer.succeeded(started)
        if status == HTTPStatus.OK:
            return
        if status in {HTTPStatus.FORBIDDEN, HTTPStatus.GONE}:
            msg = f"{recording.what}: its link answered HTTP {status} (expired)"
            raise RetryAtOnceError(msg, None)
        if (
            status == HTTPStatus.TOO_MANY_REQUESTS
            or status >= HTTPStatus.INTERNAL_SERVER_ERROR
        ):
            msg = f"HTTP {status} on {recording.what.lower()}"
            raise RetriableAPIError(msg, response)
        msg = f"{recording.what}: its link answered HTTP {status}"
        raise RecordingError(msg)

    @staticmethod
    def _receive(
        recording: Recording, response: requests.Response, archive: Archive
    ) -> tuple[Upload, str | None]:
        """Stream the body into a temporary file; raise if it came short."""
        content_type = response.headers.get("Content-Type")
        declared = response.headers.get("Content-Length")
        upload = archive.upload(
            archive_path(recording.call_record_id, recording.started_at, content_type)
        )
        try:
            for chunk in response.iter_content(CHUNK):
                upload.write(chunk)
            _check_length(recording, upload.size, declared, response)
        except BaseException:
            upload.discard()
            raise
        return upload, content_type


def _check_length(
    recording: Recording, size: int, declared: str | None, response: requests.Response
) -> None:
    """Raise if fewer (or more) bytes came than ``Content-Length`` announced."""
    if declared is not None and declared.isdigit() and size != int(declared):
        msg = f"{recording.what} came short: {size} of {declared} bytes"
        raise ShortDownloadError(msg, response)


#: Failures of a download that another try may mend (requests' own kinds).
_TRANSIENT = (
    requests.exceptions.Timeout,
    requests.exceptions.ConnectionError,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)


class RecordingsStream(SmartfloStream):
    """One record per archived recording of a call record (a child stream).

    The parent hands each call record to ``contexts_for`` (the link stays here, out
    of the context), then syncs this stream with ``{"call_record_id": ...}``.
    """

    primary_keys = ("call_record_id",)
    selected_by_default = False
    #: One state for the stream, not one per call.
    state_partitioning_keys: t.ClassVar[list[str]] = []

    @override
    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        #: Recordings handed over by the parent, waiting for their sync.
        self._handed: dict[str, Recording] = {}
        #: Calls whose recording this run has dealt with.
        self._attempted: set[str] = set()
        self._warned_no_link_field = False
        self.archived = self.found = self.failed = 0
        #: Recordings in a row whose retries ran out (see GIVE_UP_AFTER).
        self._gave_up_in_a_row = 0

    @cached_property
    def archive(self) -> Archive:
        """The archive at ``recordings_archive_url``.

        Raises:
            SmartfloError: without one (the tap checks this before any request,
                when a catalog selects the stream; this is for any other way).
        """
        if error := archive_setting_error(self.config, selected=True):
            raise SmartfloError(error)
        return Archive(
            str(self.config[ARCHIVE_URL]),
            dict(self.config.get("recordings_storage_options") or {}),
        )

    @cached_property
    def downloader(self) -> Downloader:
        """Downloads on the run's pacer and retry policy, without credentials."""
        transport = self.services.transport
        api_url = str(self.config["api_url"])
        return Downloader(
            session=make_session(api_url, 1),
            pacer=transport.pacer,
            retry=transport.retry,
            report=self.services.report,
            links=CallLinks(transport=transport, api_url=api_url),
            timeout=transport.timeout,
        )

    @cached_property
    def pending(self) -> dict[str, Recording]:
        """The recordings earlier runs left to try again (read once, then kept)."""
        return pending_recordings(
            self.stream_state.get(PENDING_KEY), self.logger.warning
        )

    @cached_property
    def settled_before(self) -> datetime | None:
        """When the last record of an archived recording went out, before this run."""
        value = self.stream_state.get(SETTLED_KEY)
        try:
            return parse_time(value) if isinstance(value, str) else None
        except ValueError:
            return None

    def contexts_for(self, record: Mapping[str, t.Any]) -> Iterator[Context]:
        """The context to archive ``record``'s recording with (none without one)."""
        if "recording_url" not in record and not self._warned_no_link_field:
            self._warned_no_link_field = True
            self.logger.warning(
                "call_records.recording_url is deselected in the catalog: %s can "
                "archive no recording (select the property again)",
                self.name,
            )
        recording = recording_of(record)
        if recording is None:
            return
        _ = self.pending, self.settled_before  # read before this run changes them
        self._handed[recording.call_record_id] = recording
        yield {"call_record_id": recording.call_record_id}

    def archive_left_over(self) -> None:
        """Try again what earlier runs left, of calls this run did not read."""
        for key in sorted(set(self.pending) - self._attempted):
            self.sync(context={"call_record_id": key})

    @override
    def request_records(self, context: Context | None) -> Iterable[dict[str, t.Any]]:
        key = str((context or {})["call_record_id"])
        recording = self._handed.pop(key, None) or self.pending.get(key)
        if recording is None or key in self._attempted:
            return
        self._attempted.add(key)
        try:
            record = self._archive(recording)
        except OSError as exc:
            msg = (
                f"{recording.what} could not be written to {ARCHIVE_URL} "
                f"({type(exc).__name__}: {exc})"
            )
            raise SmartfloError(msg) from None
        self._settle(key, recording, done=record is not False)
        if isinstance(record, dict):
            yield record
            # The record is out: a file written before now needs none again.
            self.stream_state[SETTLED_KEY] = format_utc(datetime.now(timezone.utc))
        self.services.output.write_state()
        self._note()

    def _archive(self, recording: Recording) -> dict[str, t.Any] | bool:
        """The record of the archived recording (True: had before; False: failed)."""
        archive = self.archive
        found = archive.find(recording.call_record_id, recording.started_at)
        if found is not None:
            if self._settled(found.modified):
                self.found += 1
                return True
            sha256, size = archive.read_back(found.path)
            extension = found.path.rpartition(".")[2]
            kept = Kept(found.path, sha256, size, CONTENT_TYPES.get(extension))
            return self._record(recording, kept, found.modified)
        if self._gave_up_in_a_row >= GIVE_UP_AFTER:
            self.failed += 1
            return False  # the host is down: said once, below
        try:
            upload, content_type = self.downloader.download(recording, archive)
        except (RecordingError, GaveUpError, EndpointError, ErrorBodyError) as exc:
            self.failed += 1
            self.logger.warning(
                "%s was not archived (%s): kept in the STATE for the next run",
                recording.what,
                exc,
            )
            self._gave_up_in_a_row += isinstance(exc, GaveUpError)
            if self._gave_up_in_a_row == GIVE_UP_AFTER:
                self.logger.warning(
                    "%d recordings in a row kept failing: the recording host looks "
                    "down, so this run downloads no more (each is kept in the STATE "
                    "for the next run)",
                    GIVE_UP_AFTER,
                )
            return False
        self._gave_up_in_a_row = 0
        with upload:
            upload.publish()
        self.archived += 1
        kept = Kept(upload.path, upload.sha256, upload.size, content_type)
        return self._record(recording, kept, None)

    def _settled(self, modified: datetime | None) -> bool:
        """Whether a file written at ``modified`` had its record out before this run."""
        if modified is None or self.settled_before is None:
            return False
        margin = timedelta(0) if self.archive.local else REMOTE_CLOCK_MARGIN
        return modified < self.settled_before - margin

    def _record(
        self, recording: Recording, kept: Kept, archived_at: datetime | None
    ) -> dict[str, t.Any]:
        return t.cast(
            "dict[str, t.Any]",
            self.normalizer(
                {
                    "call_record_id": recording.call_record_id,
                    "call_id": recording.call_id,
                    "started_at": format_utc(recording.started_at),
                    "archive_path": kept.path,
                    "sha256": kept.sha256,
                    "size_bytes": kept.size,
                    "content_type": kept.content_type,
                    "archived_at": format_utc(
                        (archived_at or datetime.now(timezone.utc)).replace(
                            microsecond=0
                        )
                    ),
                }
            ),
        )

    def _settle(self, key: str, recording: Recording, *, done: bool) -> None:
        """Keep a failed recording for the next run; forget one that is archived."""
        pending = dict(self.stream_state.get(PENDING_KEY) or {})
        if done:
            pending.pop(key, None)
        else:
            pending[key] = recording.remembered()
        if pending:
            self.stream_state[PENDING_KEY] = dict(sorted(pending.items()))
        else:
            self.stream_state.pop(PENDING_KEY, None)

    def _note(self) -> None:
        """What the run's summary says of the recordings."""
        waiting = len(self.stream_state.get(PENDING_KEY) or {})
        parts = [
            f"{self.archived:,} archived",
            f"{self.found:,} already in the archive",
        ]
        if waiting:
            parts.append(
                f"{waiting:,} not archived yet (kept in the STATE, tried again in "
                "the next run)"
            )
        self.services.report.note(self.name, ", ".join(parts))
