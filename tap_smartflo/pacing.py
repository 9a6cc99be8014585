"""Pacing requests to the account's rate limit, which the tap is not told.

Smartflo allows each account as many requests per second as its trunks have calls
per second, and answers 429 beyond that. The pacer starts unpaced (or at the pace a
user pinned). On the first 429 it waits for the last second to clear and restarts
at the pace that was getting through, then probes upwards fast (10% a success)
until the next 429, which cuts the pace by a quarter; from then on it probes slowly
(1% a success) and cuts by a quarter on each 429: a gentle sawtooth just under the
limit, with few refusals. The pace never runs far ahead of what the tap really
sends, so a slow stretch does not end in a burst.
"""

from __future__ import annotations

import threading
import time
from collections import deque

#: Growth per success while looking for the limit, and once it was found.
FAST_RAISE = 1.10
RAISE = 1.01
#: A fresh 429 multiplies the pace by this.
CUT = 0.75
#: The first pace is this share of what got through in the second before a 429.
SETTLE = 0.9
#: Never slower than this (requests per second): a stuck account still moves.
SLOWEST = 0.05
#: Rate limits count requests in a window of this many seconds; the tap waits a
#: little longer than that for a full window to clear (clocks and queues differ).
WINDOW = 1.0
CLEAR = 1.1


class Pacer:
    """Spaces request starts across all of a tap's threads and streams."""

    def __init__(self, ceiling: float | None = None) -> None:
        """Pace at most ``ceiling`` requests a second (None: as fast as allowed)."""
        self.ceiling = ceiling
        self.rate: float | None = ceiling
        self._raise = FAST_RAISE
        self._next_start = 0.0
        self._last_cut = float("-inf")
        self._successes: deque[float] = deque()  # start times, last WINDOW only
        self._lock = threading.Lock()

    def wait(self) -> float:
        """Block until this request may start; return its start time."""
        with self._lock:
            now = time.monotonic()
            start = now
            if self.rate is not None:
                start = max(now, self._next_start)
                self._next_start = start + 1 / self.rate
        if start > now:
            time.sleep(start - now)
        return start

    def throttled(self, started: float) -> None:
        """A request that started at ``started`` got a 429: slow down, once a round.

        Requests already in flight when the pace was last cut were sent for the
        old pace: their 429s cut nothing more.
        """
        with self._lock:
            if started <= self._last_cut:
                return
            now = time.monotonic()
            self._forget_before(started - WINDOW)
            through = [s for s in self._successes if s < started]
            if self.rate is None:
                self.rate = max(1.0, len(through) * SETTLE)
            else:
                self.rate = max(SLOWEST, self.rate * CUT)
                self._raise = RAISE
            # The last window was full: the next request waits for its oldest
            # request to leave it, and for the new pace.
            resume = through[0] + CLEAR if through else now
            self._next_start = max(self._next_start, resume, now + 1 / self.rate)
            self._last_cut = now

    def succeeded(self, started: float) -> None:
        """A request that started at ``started`` went through: probe faster."""
        with self._lock:
            self._successes.append(started)
            self._forget_before(started - WINDOW)
            if self.rate is not None:
                sent = len(self._successes)
                self.rate = min(self.rate * self._raise, max(self.rate, 1.5 * sent + 1))
                if self.ceiling is not None:
                    self.rate = min(self.rate, self.ceiling)

    @property
    def interval(self) -> float:
        """Seconds between request starts at the current pace."""
        return 0.0 if self.rate is None else 1 / self.rate

    def _forget_before(self, moment: float) -> None:
        while self._successes and self._successes[0] < moment:
            self._successes.popleft()
