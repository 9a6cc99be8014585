"""Pacing requests to the account's rate limit, which the tap is not told.

Smartflo allows each account as many requests per second as its trunks have calls
per second, and answers 429 beyond that. The limit is shared by every integration
on the account (CRM, dialer, scripts), so a 429 has two causes: the tap went over
its share, or someone else's burst filled the second. Cutting the pace on every
429 punishes the tap for the second: with one request in six refused by others, a
cut of a quarter per 429 drove the pace geometrically to the floor, and a sync of
minutes took hours. So the pacer tells the two apart.

What the tap can know for sure is a *proof*: if the account accepted ``c`` of the
tap's requests that started within less than a second of each other, it allows the
tap at least ``c`` a second. Start times are the tap's and arrivals the server's,
so a proof counts only successes within ``SPAN`` (a second less ``JITTER``), and
the tap's own budget uses a window of ``CLEAR`` (a second plus ``JITTER``).
Neighbours come and go, so a proof lapses after ``MEMORY`` seconds unless renewed.

The pace is a *level* ``k``: at most ``k`` requests in any ``CLEAR`` window, so
``k / CLEAR`` a second, never closer than ``SPAN / 2k`` apart: a window's ``k``
requests land close enough together to renew the proof of ``k`` even when others
refuse some of them. A refused request takes no slot (the server did not count
it, as with token buckets), unless a whole level's worth in a row were refused:
then someone has the whole account, and the tap waits at its pace instead of
filling freed slots with more refusals.

- Unpaced at first (or at the pinned ``max_requests_per_second``, a ceiling).
- A 429 on a request that, counting the tap's successes in the second before it,
  stays within the proof is someone else's: it is retried, and the pace stays.
- Beyond the proof, a first 429 may still be someone else's and is forgiven; a
  second at the same level is the tap's: the level drops to the proof (at least 1,
  the floor a real account always allows), and the next request waits until the
  window has room. A success proving more raises the level at once.
- Recovery goes by time, not by successes (which come slowly at a low pace): each
  ``RECOVER`` seconds the level climbs half the way back to the last good level,
  which each cut of the tap's own lowers by one, never below the proof.
- At the good level, proven and held back by the pace, the pacer probes for more
  after ``PROBE_AFTER`` seconds: double the level until the account refuses a probe
  (a pace set by refusals at the very start, before anything proved one, is then
  far below the limit and comes back within seconds), a quarter more (at least
  one) after that. A probe the account accepts
  proves the new level and the next follows soon; each one it refuses doubles the
  wait (up to ``PROBE_LONGEST``). So a stable limit costs two refusals a probe, a
  few a minute, and a limit that grew is found within seconds.

A limit counted in *fixed* windows (each clock second, as many PHP throttles
count) accepts up to twice the limit within a second that straddles a boundary,
so proofs overstate it, and paced at them a third or more of the tap's requests
are refused (while as many succeed) with every refusal inside the proof. When a
third of the tap's last ``OUTCOMES`` requests at one level were refused and a
third succeeded, the proofs overstate the limit: the level drops by one and no
proof counts beyond it (a cap that only a probe raises), and probes wait longer.
Someone else's bursts refuse fewer (a sixth, in the benchmark), and someone who
takes the whole account refuses for longer than a window, which clears the count.

The margins and probes cost a few percent of the limit; someone else's 429s cost
only the requests they refuse, and a neighbour who stays lowers the pace within
``MEMORY`` seconds.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

#: Rate limits count requests in a window of this many seconds.
WINDOW = 1.0
#: How far the tap's start times and the server's arrival times may disagree.
JITTER = 0.05
#: Successes whose starts lie this close surely shared one of the server's windows.
SPAN = WINDOW - JITTER
#: The tap's own window: requests this far apart surely did not share one.
CLEAR = WINDOW + JITTER
#: Seconds a proof holds without renewal (neighbours change).
MEMORY = 10.0
#: Seconds per step of recovery towards the last good level.
RECOVER = 1.0
#: Seconds at the good level before probing a quarter more, and the longest wait.
PROBE_AFTER = 4.0
PROBE_LONGEST = 64.0
#: The floor: level 1, one request a CLEAR window.
SLOWEST = 1 / CLEAR
#: The share-of-refusals rule looks at the tap's last this many requests.
OUTCOMES = 24
#: Slack for sums of float intervals that should meet exactly.
_EPS = 1e-6


class Pacer:
    """Spaces request starts across all of a tap's threads and streams."""

    def __init__(
        self,
        ceiling: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Pace at most ``ceiling`` requests a second (None: as fast as allowed).

        Args:
            ceiling: a pace the user pinned; 429s can lower it, nothing raises it.
            clock: monotonic seconds (injected by tests).
            sleep: blocks for seconds (injected by tests).
        """
        self.ceiling = ceiling
        #: Requests allowed per CLEAR window; None until the first 429 of the tap's.
        self.level: int | None = None
        #: The last good level, where recovery heads.
        self.good = 0
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._live: deque[float] = deque()  # own starts not refused, sorted
        self._successes: list[float] = []  # starts of successes, sorted, recent only
        self._proofs: deque[tuple[float, int]] = deque()  # (start, count), counts fall
        self._last_start = float("-inf")
        self._last_cut = float("-inf")
        self._changed = float("-inf")  # when the level last moved
        self._probe_after = PROBE_AFTER
        #: Probes double the level until the account refuses one (slow start).
        self._doubling = True
        self._probing = False
        self._forgiven = False  # a refusal beyond the proof, at this level
        self._refused_in_row = 0
        self._row_began = float("-inf")  # the start of the first refusal in a row
        #: The last OUTCOMES outcomes at this level (True: refused).
        self._outcomes: deque[bool] = deque(maxlen=OUTCOMES)
        #: No proof counts beyond this (None: all do): set when proofs overstate
        #: the limit (see _overstated).
        self._cap: int | None = None

    @property
    def rate(self) -> float | None:
        """The pace in requests a second (None: unpaced)."""
        pace = None if self.level is None else self.level / CLEAR
        if pace is None or (self.ceiling is not None and self.ceiling < pace):
            return self.ceiling
        return pace

    @property
    def interval(self) -> float:
        """Seconds between request starts at the current pace."""
        rate = self.rate
        return 0.0 if rate is None else 1 / rate

    @property
    def proven(self) -> int:
        """Requests a second the account has recently been seen to allow the tap."""
        with self._lock:
            return self._proven(self._clock())

    def wait(self) -> float:
        """Block until this request may start; return its start time."""
        with self._lock:
            now = self._clock()
            self._advance(now, held=self._earliest_start() > now)
            start = max(now, self._earliest_start())
            self._last_start = start
            self._live.append(start)
            while self._live[0] < start - 2 * CLEAR:
                self._live.popleft()
        if start > now:
            self._sleep(start - now)
        return start

    def throttled(self, started: float) -> None:
        """A request that started at ``started`` got a 429: slow down if it was ours.

        Requests already started or scheduled when the pace was last cut were sent
        for the old pace: their 429s cut nothing more.
        """
        with self._lock:
            now = self._clock()
            self._refused_in_row += 1
            if self.level is None or self._refused_in_row <= self.level:
                self._forget(started)
            if started <= self._last_cut:
                return
            # What the server counted before this request, as far as the tap knows.
            mine = 1 + _between(self._successes, started - WINDOW, started)
            proven = self._proven(now)
            overstated = self._refused_counts(started) and self._overstated()
            if mine <= proven and not overstated:
                return
            if not self._forgiven and not overstated:
                # Beyond the proof, one refusal may still be someone else's; a
                # second at the same level is the tap's.
                self._forgiven = True
                return
            if overstated:
                # One level down, no proof counting beyond it, and the next probe
                # later (proofs cannot tell whether a probe held).
                self._cut(max(1, (self.level or 1) - 1), now, proven, overstated=True)
            else:
                self._cut(max(1, proven), now, proven, overstated=False)

    def _refused_counts(self, started: float) -> bool:
        """Record a refusal among the outcomes; False if it says nothing of proofs."""
        if self._refused_in_row == 1:
            self._row_began = started
        if started - self._row_began > CLEAR:
            # Refused for longer than a window: someone has the whole account,
            # and these refusals say nothing of the proofs (see _overstated).
            self._outcomes.clear()
            return False
        self._outcomes.append(True)
        return True

    def _cut(self, level: int, now: float, proven: int, *, overstated: bool) -> None:
        """Lower the pace to ``level`` (the lock held)."""
        if overstated or self._cap is not None:
            # Once proofs overstated the limit, they never count beyond the pace.
            self._cap = level
        if overstated and not self._probing:  # a refused probe doubles it below
            self._probe_after = min(
                max(PROBE_AFTER, 2 * self._probe_after), PROBE_LONGEST
            )
        # Slow start only while no cut has had a proof to stand on: refused
        # before anything proved a pace, the tap knows nothing of the limit,
        # so it looks again soon, and fast.
        self._doubling = self._doubling and proven == 0
        if self._doubling:
            self._probe_after = CLEAR
        if self.level is None or self._probing or overstated:
            self.good = level
        else:
            self.good = max(level, self.good - 1)
        if self._probing:
            self._probing = False
            self._doubling = False
            self._probe_after = min(
                max(PROBE_AFTER, 2 * self._probe_after), PROBE_LONGEST
            )
        self._move(level, now)
        self._last_cut = max(now, self._last_start)

    def succeeded(self, started: float) -> None:
        """A request that started at ``started`` went through: it may prove more."""
        with self._lock:
            now = self._clock()
            self._refused_in_row = 0
            self._outcomes.append(False)
            successes = self._successes
            bisect.insort(successes, started)
            del successes[: bisect.bisect_left(successes, successes[-1] - CLEAR)]
            count = bisect.bisect_right(successes, started) - bisect.bisect_right(
                successes, started - SPAN
            )
            before = self._proven(now)
            while self._proofs and self._proofs[-1][1] <= count:
                self._proofs.pop()
            self._proofs.append((started, count))
            proven = self._proven(now)
            if proven <= before or self.level is None:
                return
            # The account took more than proven: that is the tap's pace now.
            if self._probing and proven >= self.level:
                self._probing = False
                if self._cap is None:
                    self._probe_after = CLEAR  # and the next probe soon
            self.good = max(self.good, proven)
            self._move(max(self.level, proven), now)

    def _earliest_start(self) -> float:
        earliest = float("-inf")
        if self.ceiling:
            earliest = self._last_start + 1 / self.ceiling
        if self.level is not None:
            earliest = max(earliest, self._last_start + SPAN / (2 * self.level))
            if len(self._live) >= self.level:
                # The window must have room: the level-th latest start leaves it.
                earliest = max(earliest, self._live[-self.level] + CLEAR)
        return earliest

    def _advance(self, now: float, *, held: bool) -> None:
        """Let time do its part: recovery towards the good level, then probes.

        A probe needs a tap that the pace holds back (``held``): a slow stretch
        tells nothing about one more request a second.
        """
        if self.level is None:
            return
        if self.level < self.good:
            steps = int((now - self._changed) / RECOVER)
            level = self.level
            for _ in range(min(steps, self.good - level)):
                level += (self.good - level + 1) // 2
            if steps:
                self._move(level, self._changed + steps * RECOVER)
            return
        at_ceiling = self.ceiling is not None and self.level / CLEAR >= self.ceiling
        if (
            held
            and not self._probing
            and not at_ceiling
            and self._proven(now) >= self.level
            and now - self._changed >= self._probe_after
        ):
            step = self.level if self._doubling else max(1, self.level // 4)
            self.good = self.level + step
            if self._cap is not None:
                self._cap = self.good
            self._probing = True
            self._move(self.good, now)

    def _move(self, level: int | None, now: float) -> None:
        self.level = level
        self._changed = now
        self._forgiven = False
        self._outcomes.clear()

    def _overstated(self) -> bool:
        """Whether the proofs overstate the limit: many refusals within them.

        A limit counted in fixed windows (each clock second) accepts up to twice
        the limit within one second across a boundary, and that proves too much:
        paced at it, a third or more of the tap's requests are refused while as
        many succeed. Someone else's bursts refuse fewer (a sixth, in the
        benchmark), and someone taking the whole account leaves no successes.
        """
        outcomes = self._outcomes
        refused = sum(outcomes)
        return (
            self.level is not None
            and len(outcomes) == OUTCOMES
            and 3 * refused >= OUTCOMES
            and 3 * (OUTCOMES - refused) >= OUTCOMES
        )

    def _proven(self, now: float) -> int:
        while self._proofs and self._proofs[0][0] < now - MEMORY:
            self._proofs.popleft()
        proven = self._proofs[0][1] if self._proofs else 0
        return proven if self._cap is None else min(proven, self._cap)

    def _forget(self, started: float) -> None:
        """A refused request took no slot in the server's window."""
        index = bisect.bisect_left(self._live, started)
        if index < len(self._live) and self._live[index] == started:
            del self._live[index]


def _between(starts: list[float], after: float, before: float) -> int:
    """How many of the sorted ``starts`` lie in (after, before]."""
    return bisect.bisect_right(starts, before) - bisect.bisect_right(
        starts, after + _EPS
    )
