"""Call records' closed time windows, and which calls a run has emitted.

Call records have no ``updated_at`` and come newest first, so pages shift while
calls arrive. A run reads windows of at most ``call_records_window_days`` that all
end before the run started, oldest first, and emits each call once even when the
server returns it twice (pushed onto the next page by a new call, on the edge of two
windows, or from a neighbouring window when the server reads the dates in another
zone). Pure functions and one small class: the stream applies them.
"""

from __future__ import annotations

import typing as t
from datetime import datetime, timedelta

from tap_smartflo.normalize import UTC, format_utc

if t.TYPE_CHECKING:
    from collections.abc import Iterator

#: Where call records start when ``start_date`` is empty.
CALL_HISTORY_START = datetime(2015, 1, 1, tzinfo=UTC)
#: How long before the run's start the newest window ends: a margin for the
#: server's clock and for calls being written, so no window reaches the future.
CALL_WINDOW_END_MARGIN = timedelta(minutes=1)
#: How far outside its window a returned call is still taken for a near miss (the
#: server reading the dates in another zone): farther means the dates are ignored.
CALL_WINDOW_SLACK = timedelta(days=1)


def time_windows(
    start: datetime, end: datetime, length: timedelta
) -> Iterator[tuple[datetime, datetime]]:
    """Split ``[start, end)`` into windows of at most ``length``, oldest first.

    Consecutive windows share their edge, so each moment lies in exactly one window.
    """
    while start < end:
        stop = min(start + length, end)
        yield start, stop
        start = stop


def call_windows(
    start: datetime | None, run_started: datetime, days: int
) -> list[tuple[datetime, datetime]]:
    """The closed windows a run reads, oldest first, in whole seconds.

    From ``start`` (all history when None) to a margin before ``run_started``.
    """
    return history_windows(start, run_started - CALL_WINDOW_END_MARGIN, days)


def history_windows(
    start: datetime | None, end: datetime, days: float
) -> list[tuple[datetime, datetime]]:
    """``[start, end)`` in windows of at most ``days``, oldest first, whole seconds.

    All history (from CALL_HISTORY_START) when ``start`` is None.
    """
    low = (start or CALL_HISTORY_START).replace(microsecond=0)
    return list(time_windows(low, end.replace(microsecond=0), timedelta(days=days)))


class CallLedger:
    """The calls a run has emitted near the window being read, to emit each once."""

    def __init__(self) -> None:
        """Nothing emitted yet."""
        self._emitted: dict[str, str] = {}  # id -> started_at

    @staticmethod
    def near(started_at: str | None, start: datetime, end: datetime) -> bool:
        """Whether a call that started at ``started_at`` belongs near ``[start, end)``.

        A call up to CALL_WINDOW_SLACK outside is a near miss (kept); one farther out
        means the server ignores the dates (left to its own window).
        """
        if started_at is None:
            return True
        low = format_utc(start - CALL_WINDOW_SLACK)
        high = format_utc(end + CALL_WINDOW_SLACK)
        return low <= started_at < high

    def first_time(self, call_id: str, started_at: str | None) -> bool:
        """Whether the call ``call_id`` is new to this run (and note it if so)."""
        if call_id in self._emitted:
            return False
        self._emitted[call_id] = started_at or ""
        return True

    def window_done(self, end: datetime) -> None:
        """Forget calls too old for any later window to return again."""
        horizon = format_utc(end - CALL_WINDOW_SLACK)
        self._emitted = {i: s for i, s in self._emitted.items() if s >= horizon}
