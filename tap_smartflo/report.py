"""What a run did: its refused streams, its progress while it runs, its summary.

Refused streams. A token may lack permission for one endpoint (and a server may lack
one), which should not stop the others. A stream refused from its first request is
skipped with a warning, unless an earlier run extracted it: then the token *lost*
access, which must not hide in a green run, so the run fails once every other stream
is done. When every selected stream is refused, the run fails at once (a wrong
api_url).

Unread parts. A child stream (broadcast leads) reads one endpoint per parent record
(each broadcast list). When one of them answers an error instead of records, the
others are still worth loading; but a table missing one list's leads must not hide
in a green run either: the run fails at its end, with one line per part not read.

Progress and summary. Each stream counts its records, requests, retries and 429s
(from every thread that sends for it). At most every ``progress_interval_seconds``
one INFO line per active stream says how far it has come; when the run ends, one line
per selected stream and one for the run say what it did. Lines go to the log
(stderr): stdout is the Singer stream.
"""

from __future__ import annotations

import threading
import time
import typing as t
from dataclasses import dataclass

from tap_smartflo.errors import EndpointError, SmartfloError

if t.TYPE_CHECKING:
    import logging
    from collections.abc import Callable, Collection, Mapping

#: What discovery's requests (contact groups, for contacts' columns) are counted as.
DISCOVERY = "discovery"
#: Where a full-table stream's "bookmark" stands: it has none, each run reads it all.
FULL_TABLE = "full table"


@dataclass
class StreamStats:
    """What one stream did so far."""

    records: int = 0
    requests: int = 0
    retries: int = 0
    throttled: int = 0
    #: Seconds spent syncing, and when the current stretch began (None: idle).
    seconds: float = 0.0
    since: float | None = None
    #: For a stream that knows its range in advance: the share done, and the range.
    done: float | None = None
    span: str = ""


class Selection(t.Protocol):
    """What says which streams a run extracts (the tap, once its catalog is read)."""

    @property
    def selected_streams(self) -> Collection[str]:  # noqa: D102
        ...


class RunReport:
    """The refused streams, the counts and the progress lines of one run."""

    def __init__(
        self,
        selection: Selection,
        *,
        logger: logging.Logger,
        progress_interval: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Judge refusals by ``selection``; log progress each interval (0: off)."""
        self.selection = selection
        self.logger = logger
        self.progress_interval = progress_interval
        self.clock = clock
        self.started = clock()
        self._last_progress = self.started
        self._lock = threading.Lock()
        self.stats: dict[str, StreamStats] = {}
        #: Requests that belong to no stream (logins).
        self.other_requests = 0
        #: Stream name -> why it was skipped (lost streams included).
        self.skipped: dict[str, str] = {}
        #: Stream name -> HTTP status of the refusal.
        self.refusals: dict[str, int] = {}
        #: Stream name -> the line that fails the run.
        self.lost: dict[str, str] = {}
        #: Stream name -> a line per part of it (a parent record's records) not read.
        self.unread: dict[str, list[str]] = {}
        #: Stream name -> what else its summary line says (the recordings archived).
        self.notes: dict[str, str] = {}

    # Refusals

    def refused(
        self, stream: str, error: EndpointError, *, extracted_before: bool
    ) -> None:
        """Note that ``stream`` was refused from its first request.

        Raises:
            SmartfloError: when every selected stream has now been refused.
        """
        self.skipped[stream] = str(error)
        self.refusals[stream] = error.status
        if set(self.selection.selected_streams) <= set(self.skipped):
            raise SmartfloError("; ".join(sorted(set(self.skipped.values()))))
        if extracted_before:
            self.lost[stream] = (
                f"Stream '{stream}' was extracted before, but Smartflo now refuses "
                f"it (HTTP {error.status} on {error.path}): the token may have lost "
                f"access to it. If that is intended, deselect it (meltano select "
                f"tap-smartflo --exclude {stream} '*', or \"selected\": false in the "
                "catalog)"
            )
            self.logger.warning(
                "Stream '%s' was extracted before but is refused now: %s",
                stream,
                error,
            )
            return
        self.logger.warning(
            "Skipping stream '%s': %s. Deselect it in the catalog if this is expected.",
            stream,
            error,
        )

    def not_read(self, stream: str, part: str, error: Exception) -> None:
        """Note that the records of ``part`` (``list_id 4402``) could not be read."""
        line = f"Stream '{stream}': the records of {part} were not read: {error}"
        self.unread.setdefault(stream, []).append(
            f"{line} (everything else was loaded; the next run reads it again)"
        )
        self.logger.warning(
            "%s. Reading the rest; the run will fail at its end.", line.rstrip(".")
        )

    def note(self, stream: str, text: str) -> None:
        """What ``stream``'s summary line says besides its counts (the latest)."""
        with self._lock:
            self.notes[stream] = text

    def failures(self) -> list[str]:
        """Why a run whose streams were all synced fails: one line per loss or gap."""
        unread = [line for lines in self.unread.values() for line in lines]
        return [*sorted(self.lost.values()), *unread]

    # Counting (any thread)

    def _of(self, stream: str | None) -> StreamStats | None:
        if stream is None:
            return None
        return self.stats.setdefault(stream, StreamStats())

    def sent(self, stream: str | None, *, retry: bool) -> None:
        """A request for ``stream`` (None: a login) is on its way."""
        with self._lock:
            stats = self._of(stream)
            if stats is None:
                self.other_requests += 1
            else:
                stats.requests += 1
                stats.retries += retry
        self.tick()

    def throttled(self, stream: str | None) -> None:
        """A request for ``stream`` was answered 429."""
        with self._lock:
            if (stats := self._of(stream)) is not None:
                stats.throttled += 1

    def emitted(self, stream: str, records: int = 1) -> None:
        """``stream`` wrote ``records`` RECORD messages."""
        with self._lock:
            t.cast("StreamStats", self._of(stream)).records += records

    def begin(self, stream: str) -> None:
        """``stream`` starts (or resumes) syncing."""
        with self._lock:
            stats = t.cast("StreamStats", self._of(stream))
            stats.since = self.clock()

    def end(self, stream: str) -> None:
        """``stream`` stops syncing."""
        with self._lock:
            stats = t.cast("StreamStats", self._of(stream))
            if stats.since is not None:
                stats.seconds += self.clock() - stats.since
                stats.since = None

    def reached(self, stream: str, done: float, span: str) -> None:
        """``stream`` has done the share ``done`` of its known range ``span``."""
        with self._lock:
            stats = t.cast("StreamStats", self._of(stream))
            stats.done, stats.span = done, span
        self.tick()

    # Progress

    def tick(self) -> None:
        """Log one progress line per active stream, at most once an interval."""
        if not self.progress_interval:
            return
        now = self.clock()
        with self._lock:
            if now - self._last_progress < self.progress_interval:
                return
            self._last_progress = now
            lines = [
                self._progress_line(name, stats, now)
                for name, stats in self.stats.items()
                if stats.since is not None
            ]
        for line in lines:
            self.logger.info("Progress: %s", line)

    def _progress_line(self, name: str, stats: StreamStats, now: float) -> str:
        elapsed = stats.seconds + (now - (stats.since or now))
        rate = stats.requests / elapsed if elapsed > 0 else 0.0
        counts = (
            f"{stats.records:,} records, {_plural(stats.requests, 'request')} "
            f"({rate:.1f}/s), {stats.throttled} throttled (429), "
            f"{_plural(stats.retries, 'retry', 'retries')}, {_duration(elapsed)}"
        )
        if stats.done is None:
            return f"{name}: {counts}"
        share = f"{stats.done:.0%} of {stats.span}"
        if stats.done <= 0:
            return f"{name}: {share}, {counts}"
        left = elapsed * (1 - stats.done) / stats.done
        return f"{name}: {share}, {counts}, about {_duration(left)} left"

    # Summary

    def summary(self, bookmarks: Mapping[str, str], outcome: str) -> list[str]:
        """The closing lines: one per selected stream, then one for the run.

        ``bookmarks`` says where each stream's bookmark stands (or FULL_TABLE);
        ``outcome`` is "succeeded" or why the run failed.
        """
        now = self.clock()
        lines = []
        totals = StreamStats()
        streams = 0
        for name in self.selection.selected_streams:
            stats = self.stats.get(name, StreamStats())
            streams += 1
            totals.records += stats.records
            totals.requests += stats.requests
            totals.retries += stats.retries
            totals.throttled += stats.throttled
            seconds = stats.seconds + (now - stats.since if stats.since else 0.0)
            if name in self.lost:
                where = f"refused: HTTP {self.refusals[name]} (extracted before)"
            elif name in self.skipped:
                where = f"skipped: HTTP {self.refusals[name]}"
            elif name not in self.stats:
                # A run stopped before it: whatever its replication, nothing read.
                kept = bookmarks.get(name, FULL_TABLE)
                where = "not reached" + (
                    "" if kept == FULL_TABLE else f" ({kept} kept)"
                )
            else:
                where = bookmarks.get(name, "no bookmark yet")
            if unread := self.unread.get(name):
                where += f"; incomplete: {_plural(len(unread), 'part')} not read"
            if note := self.notes.get(name):
                where += f"; {note}"
            lines.append(
                f"{name}: {stats.records:,} records, "
                f"{_plural(stats.requests, 'request')}, "
                f"{_plural(stats.retries, 'retry', 'retries')}, "
                f"{stats.throttled} throttled (429), {seconds:.1f} s; {where}"
            )
        others = []
        if self.other_requests:
            others.append(_plural(self.other_requests, "login"))
        if DISCOVERY in self.stats:
            requests = self.stats[DISCOVERY].requests
            others.append(_plural(requests, "discovery request"))
        logins = f" (and {', '.join(others)})" if others else ""
        lines.append(
            f"Run {outcome} in {now - self.started:.1f} s: "
            f"{_plural(streams, 'stream')}, {totals.records:,} records, "
            f"{_plural(totals.requests, 'request')}{logins}, "
            f"{_plural(totals.retries, 'retry', 'retries')}, "
            f"{totals.throttled} throttled (429)"
        )
        return lines


def _plural(count: int, one: str, many: str | None = None) -> str:
    return f"{count:,} {one if count == 1 else many or one + 's'}"


def _duration(seconds: float) -> str:
    """``45 s``, ``6 min 10 s``, ``2 h 5 min``: short enough for a log line."""
    whole = round(seconds)
    if whole < 60:  # noqa: PLR2004 (a minute)
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:  # noqa: PLR2004 (an hour)
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"
