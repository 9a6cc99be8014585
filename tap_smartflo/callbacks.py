"""Scheduled callbacks: the windows a run reads, and what it emits of them.

``GET /v1/dialer/schedule_call`` answers the callbacks due between ``from_date`` and
``to_date`` (both required, naive IST, at most 31 days apart); there is no filter on
``updated_at``. A callback's ``status`` changes around its due time, after it was
first read, and new ones are scheduled days or weeks ahead. So each run reads, in
windows of CALLBACK_WINDOW_DAYS:

- from the previous bookmark less ``scheduled_callbacks_lookback_days`` (from
  ``start_date``, or CALL_HISTORY_START, on the first run) to
  ``scheduled_callbacks_days_ahead`` after the run started.

The bookmark is the run's start: every callback due before it was read as it stood
then. What can still change is re-read every run, but emitted only if it changed:
the state keeps a digest (12 hex digits) of each callback due from the run's start
less the lookback (and a day's slack) onward, as this run emitted it
(``CallbackDigests``); the next run emits a callback only when its digest differs,
or it is new. The state stays as
small as that range: a few bytes per callback due in the lookback and the days
ahead. See docs/scheduled-callbacks.md for what the lookback covers, and what not.
"""

from __future__ import annotations

import typing as t
from datetime import datetime, timedelta

from typing_extensions import override

from tap_smartflo.call_windows import history_windows
from tap_smartflo.errors import ErrorBodyError, RequestRefusedError, SmartfloError
from tap_smartflo.incremental import (
    EMITTED_KEY,
    IncrementalSmartfloStream,
    content_digest,
)
from tap_smartflo.normalize import IST, UTC, format_utc, query_time
from tap_smartflo.pages import Unpaged

if t.TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from singer_sdk.helpers.types import Context

#: Days a window spans (plus the second before it, for a server that compares
#: ``from_date`` exclusively): within the 31 the API is taken to allow, with room
#: for a server that counts both ends.
CALLBACK_WINDOW_DAYS = 30
#: How far outside its window a returned callback is still taken for a near miss
#: (the server reading the dates in another zone): farther means the dates are
#: ignored, and the callback is left to its own window.
CALLBACK_WINDOW_SLACK = timedelta(days=1)


def callback_windows(
    start: datetime | None, run_started: datetime, days_ahead: float
) -> list[tuple[datetime, datetime]]:
    """The windows a run reads, oldest first, in whole seconds.

    From ``start`` (all history when None) to ``days_ahead`` after ``run_started``.
    """
    end = run_started + timedelta(days=days_ahead)
    return history_windows(start, end, CALLBACK_WINDOW_DAYS)


class CallbackDigests:
    """Which callbacks to emit: those new or changed since a run last emitted them.

    ``before`` is the state's (callback id -> digest), ``keep_from`` the earliest due
    time (UTC RFC 3339) the next run re-reads: only callbacks due from then on (or
    with no due time) are remembered after the run.
    """

    def __init__(self, before: object, *, keep_from: str) -> None:
        """Start from what the last run remembered."""
        self.before: dict[str, str] = dict(before) if isinstance(before, dict) else {}
        self.keep_from = keep_from
        #: id -> (digest, due time) of every callback this run read.
        self.read: dict[str, tuple[str, str | None]] = {}

    def admit(
        self, identity: str, due: str | None, record: Mapping[str, t.Any]
    ) -> bool:
        """Whether to emit ``record`` (the callback ``identity``, due at ``due``)."""
        digest = content_digest(record)
        known = self.read.get(identity, (self.before.get(identity), None))[0]
        self.read[identity] = (digest, due)
        return digest != known

    def settled(self, before: str) -> None:
        """Forget the callbacks read that are due before ``before``.

        Neither a later window of this run (which takes near misses a slack before
        its start, at most) nor a run resuming from here (which starts a lookback
        before the bookmark) reads them again: keeping them would make the state
        of a first sync grow with the whole history.
        """
        self.read = {
            k: (d, due)
            for k, (d, due) in self.read.items()
            if due is None or due >= before
        }

    def during(self) -> dict[str, str]:
        """What the state holds while the run goes on: the digests emitted lately.

        The last run's, updated with this run's not yet settled: a run that fails
        now resumes with what the target was last sent.
        """
        return {**self.before, **{k: d for k, (d, _) in self.read.items()}}

    def after(self) -> dict[str, str]:
        """What the state holds after a whole run: what the next run re-reads.

        The run re-read every callback the last one remembered (they were due from
        its ``keep_from``, which is where this run began), so one it did not return
        is gone from that range: forgotten, as is every callback now settled.
        """
        return {
            k: d
            for k, (d, due) in self.read.items()
            if due is None or due >= self.keep_from
        }


class CallbackWindowsStream(IncrementalSmartfloStream):
    """Callbacks read in ``from_date``/``to_date`` windows, emitted when they change.

    See the module's docstring. A window the API refuses (a 422, or an error object)
    ends the run with a line naming the window and what the API said.
    """

    records_key: str | None = "data"
    #: All of a window's callbacks at once (a 422 is about the window).
    paging = Unpaged()
    replication_key = "schedule_date_time"

    @property
    @override
    def lookback(self) -> timedelta:
        return timedelta(days=float(self.config["scheduled_callbacks_lookback_days"]))

    @override
    def get_replication_key_signpost(self, context: Context | None = None) -> datetime:
        # Public SDK API: the most a bookmark may be. Whole seconds, as every time
        # the tap writes; this stream's bookmark ends at the run's start.
        signpost = t.cast("datetime", super().get_replication_key_signpost(context))
        return signpost.replace(microsecond=0)

    @property
    def days_ahead(self) -> float:
        """How many days after the run's start it reads callbacks scheduled ahead."""
        return float(self.config["scheduled_callbacks_days_ahead"])

    @override
    def get_url_params(
        self, context: Context | None, next_page_token: t.Any
    ) -> dict[str, t.Any]:
        window = t.cast("Mapping[str, str]", context)
        return {"from_date": window["from_date"], "to_date": window["to_date"]}

    @override
    def access_check_params(self) -> dict[str, t.Any]:
        # The coming hour: a window the endpoint accepts, with few callbacks.
        start = datetime.now(UTC).replace(microsecond=0)
        return {
            "from_date": query_time(start, IST),
            "to_date": query_time(start + timedelta(hours=1), IST),
        }

    @override
    def request_records(self, context: Context | None) -> Iterable[dict[str, t.Any]]:
        self.seed_bookmark(context)
        run_started = self.get_replication_key_signpost(context)
        windows = callback_windows(
            self.replicate_from(context), run_started, self.days_ahead
        )
        state = self.get_context_state(context)
        # The next run reads from here, and takes near misses a slack earlier.
        keep_from = run_started - self.lookback - CALLBACK_WINDOW_SLACK
        digests = CallbackDigests(
            state.get(EMITTED_KEY), keep_from=format_utc(keep_from)
        )
        if not windows:  # a bookmark past the range (the state warned of it)
            return
        keys = self.primary_keys or ()
        first, last = windows[0][0], windows[-1][1]
        span = f"{first:%Y-%m-%d} to {last:%Y-%m-%d}"
        strays = 0
        for start, end in windows:
            self.services.report.reached(
                self.name, (start - first) / (last - first), span
            )
            low = format_utc(start - CALLBACK_WINDOW_SLACK)
            high = format_utc(end + CALLBACK_WINDOW_SLACK)
            for record in self._window_records(context, start, end):
                due = record.get(self.replication_key)
                if due is not None and not low <= due < high:
                    strays += 1  # not this window's: read (and emitted) from its own
                    continue
                identity = "|".join(str(record[k]) for k in keys)
                if digests.admit(identity, due, record):
                    yield record
            read_through = min(end, run_started)
            digests.settled(
                format_utc(read_through - self.lookback - CALLBACK_WINDOW_SLACK)
            )
            state[EMITTED_KEY] = digests.during()
            self.advance_bookmark(context, read_through)
            # The digests of what this window emitted, even where the bookmark
            # stays (a window ahead): a run that fails later resumes from them.
            self.services.output.write_state()
        state[EMITTED_KEY] = digests.after()
        self._end_bookmark_at(context, run_started)
        self.services.report.reached(self.name, 1.0, span)
        if strays:
            self.logger.warning(
                "%s returned %d callbacks due outside the from_date/to_date asked "
                "for: it does not filter by these dates as documented. Each "
                "callback was taken from its own window, but reading takes more "
                "requests.",
                self.path,
                strays,
            )

    def _end_bookmark_at(self, context: Context | None, run_started: datetime) -> None:
        """Make the run's start the bookmark the SDK promotes at the stream's end.

        The SDK's markers hold the due time of the last callback emitted, which may
        lie weeks ahead (it would cap that at the run's start, in its own format)
        or in the lookback (it would move the bookmark back). A bookmark already
        past the run's start (the state warned of it) is left as it is.
        """
        markers = self._progress_markers(context)
        previous = self._previous_bookmark(context)
        if previous is not None and previous > run_started:
            markers.pop("replication_key", None)
            markers.pop("replication_key_value", None)
        else:
            markers["replication_key_value"] = format_utc(run_started)

    def _window_records(
        self, context: Context | None, start: datetime, end: datetime
    ) -> Iterable[dict[str, t.Any]]:
        """The callbacks the API returns for ``[start, end]``; a refusal named."""
        window = {
            **(context or {}),
            # A second early, in case the server compares from_date exclusively.
            "from_date": query_time(start - timedelta(seconds=1), IST),
            "to_date": query_time(end, IST),
        }
        try:
            yield from super().request_records(window)
        except (RequestRefusedError, ErrorBodyError) as exc:
            msg = (
                f"{self.path} refused the window from_date={window['from_date']} "
                f"to_date={window['to_date']} (IST; {format_utc(start)} to "
                f"{format_utc(end)}), which the tap asks for as at most "
                f"{CALLBACK_WINDOW_DAYS} days with both dates set ({exc}). The API "
                "is taken to allow 31 days: if it now allows fewer, or wants other "
                "dates, report it"
            )
            raise SmartfloError(msg) from None
