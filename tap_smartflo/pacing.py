"""Pacing every request to a polite share of the account's rate limit.

A Smartflo account has one rate limit for all its integrations (the CRM's
click-to-call, the dialer, agents' apps), and a refusal there is an agent who
cannot place a call. So the tap spaces its requests evenly at a *share* of the
limit (``rate_limit_share``, half by default), capped by ``max_requests_per_second``.

The limit is *told* (``account_requests_per_second``), *remembered* (learned by an
earlier run within RELEARN_AFTER, kept in STATE by memory.py), or *learned*: a ramp
from two requests a second, a quarter more (one at least) for each window it fills
without a refusal, that stops at the first 429 the tap's own requests helped
cause. The limit is then the most the tap got through in a window: a neighbour's
use makes it smaller, never larger. A remembered limit past RELEARN_AFTER is
learned again by a ramp that starts at the share.

A 429 at the share is a neighbour's doing: the pace halves (to FLOOR of the share
at least) and climbs back by an eighth each quiet RECOVER seconds, so a neighbour
that appears gets its room within seconds. A second cut within CHANGED_WITHIN
seconds of the first says the account has changed (lost trunks, or gained a
steady neighbour): a learned limit is lowered by one and remembered so (a told
one stays as told). A lone cut now and then is a burst, or the network's jitter.

Every request the tap sends waits here first: pages, retries and logins
(transport.py and auth.py call ``wait``); new code that sends must do the same.
"""

from __future__ import annotations

import threading
import time
import typing as t
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

if t.TYPE_CHECKING:
    from collections.abc import Callable

    from tap_smartflo.memory import AccountMemory

#: Rate limits count requests in a window of this many seconds; the tap spaces
#: a window's worth over CLEAR, a margin for the network's jitter.
WINDOW = 1.0
CLEAR = 1.03
#: The ramp's first level: requests per CLEAR window (every account allows more
#: than one a second: its trunks' calls per second).
FIRST_LEVEL = 2.0
#: A remembered limit older than this is learned again (gently).
RELEARN_AFTER = timedelta(days=1)
#: After a neighbour's 429 the pace climbs back by STEP_BACK of the share each
#: RECOVER seconds without one, never below FLOOR of it.
RECOVER = 2.0
STEP_BACK = 0.125
FLOOR = 0.125
#: Two cuts this many seconds apart or closer lower a learned limit by one.
CHANGED_WITHIN = 30.0

TOLD, REMEMBERED, LEARNED = "told", "remembered", "learned"


@dataclass(frozen=True)
class Allowance:
    """What the account allows: ``limit`` requests a second, and how that is known."""

    limit: float
    source: str  # TOLD, REMEMBERED or LEARNED
    learned_at: datetime | None = None


class Pacer:
    """Spaces request starts across all of a tap's threads and streams."""

    def __init__(  # noqa: PLR0913 (the settings, the memory and the two clocks)
        self,
        *,
        share: float = 0.5,
        ceiling: float | None = None,
        told: float | None = None,
        memory: AccountMemory | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        utcnow: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ) -> None:
        """Pace at ``share`` of the account's limit, never above ``ceiling``.

        Args:
            share: the fraction of the account's limit the tap may use.
            ceiling: requests a second the tap never exceeds (None: no cap).
            told: the account's limit, when the user knows it.
            memory: where a learned limit is remembered (and read at the first
                request, once the STATE is loaded).
            clock: monotonic seconds (injected by tests).
            sleep: blocks for seconds (injected by tests).
            utcnow: the time of day, for when a limit was learned.
        """
        self.share = share
        self.ceiling = ceiling
        self._told = told
        self._memory = memory
        self._clock = clock
        self._sleep = sleep
        self._utcnow = utcnow
        self._lock = threading.Lock()
        self.allowance: Allowance | None = None
        #: While learning: requests per CLEAR window now, and the last level held.
        self.level = 0.0
        self._held = 0.0
        self._step_began = float("-inf")
        self._started = False
        self._starts: deque[float] = deque()  # recent starts
        #: While learning: each recent start's (level, last level held) then.
        self._levels: dict[float, tuple[float, float]] = {}
        self._successes: deque[float] = deque()  # recent successes' starts
        self._proof = 0  # the most successes seen within one window
        self._last_start = float("-inf")  # the latest start given out
        self._sent_last = float("-inf")  # the latest start that went
        self._generation = 0  # one more at each fall of the pace
        #: After a neighbour's 429: the fraction of the share in use.
        self.factor = 1.0
        self._last_cut = float("-inf")  # when the pace last fell
        self._cut_at = float("-inf")  # when a neighbour's 429 last cut it
        self._quiet_since = float("-inf")
        self.cuts = 0
        self._waited = False  # whether the pace held a request back in this step
        self.answered = 0
        self.refused = 0

    @property
    def rate(self) -> float:
        """The pace now, in requests a second."""
        if self.allowance is None:
            pace = self.level / CLEAR
        else:
            pace = self.share * self.allowance.limit * self.factor / CLEAR
        return pace if self.ceiling is None else min(pace, self.ceiling)

    @property
    def interval(self) -> float:
        """Seconds between request starts at the current pace."""
        return 1 / self.rate

    def wait(self) -> float:
        """Block until this request may start; return its start time."""
        while True:
            with self._lock:
                now = self._clock()
                if not self._started:
                    self._begin(now)
                # Threads that fetch ahead ask early: the pace is judged at the
                # time the request will start, not the time it asked.
                start = max(now, self._last_start + self.interval)
                if self._advance(start):
                    start = max(now, self._last_start + self.interval)
                self._waited |= start > now
                self._last_start = start
                generation = self._generation
                level = (self.level, self._held)  # what this start is paced at
            if start > now:
                self._sleep(start - now)
            with self._lock:
                if generation == self._generation:
                    self._went(start, level)
                    return start
                # The pace was cut while this request waited: it lines up again.

    def _went(self, start: float, level: tuple[float, float]) -> None:
        """A request starts at ``start``, paced at ``level`` (the lock held)."""
        self._sent_last = max(self._sent_last, start)
        self._starts.append(start)
        if self.allowance is None:
            self._levels[start] = level
        while self._starts[0] < start - CLEAR:
            self._levels.pop(self._starts.popleft(), None)

    def _slow_down(self, now: float) -> None:
        """The pace just fell: waiting requests line up again (the lock held).

        They line up at the new pace after the last request that went.
        """
        self._generation += 1
        self._last_start = self._sent_last
        self._last_cut = now

    def succeeded(self, started: float) -> None:
        """A request that started at ``started`` went through."""
        with self._lock:
            self.answered += 1
            successes = self._successes
            successes.append(started)
            while successes[0] < successes[-1] - WINDOW:
                successes.popleft()
            within = sum(1 for s in successes if started - WINDOW < s <= started)
            self._proof = max(self._proof, within)

    def throttled(self, started: float) -> None:
        """A request that started at ``started`` got a 429."""
        with self._lock:
            now = self._clock()
            self.answered += 1
            self.refused += 1
            if started <= self._last_cut:
                return  # sent at the old pace: its 429 says nothing new
            if self.allowance is None:
                # A sign of the limit if the tap's own requests (answered or still
                # on their way) were filling the window; else someone else's.
                if any(started - WINDOW < s < started for s in self._starts):
                    self._learned(now, started)
                return
            # At the share: a neighbour needs the room.
            again = now - self._cut_at <= CHANGED_WITHIN
            self.factor = max(FLOOR, self.factor / 2)
            self._slow_down(now)
            self._quiet_since = self._cut_at = now
            self.cuts += 1
            if again and self.allowance.source != TOLD:
                self._lower()

    def _lower(self) -> None:
        """The share keeps being refused: believe (and remember) one less."""
        limit = max(1.0, t.cast("Allowance", self.allowance).limit - 1)
        when = self._utcnow()
        self.allowance = Allowance(limit, LEARNED, when)
        if self._memory is not None:
            self._memory.remember_limit(limit, when)

    def _begin(self, now: float) -> None:
        """At the first request (the STATE loaded): told, remembered, or a ramp."""
        self._started = True
        self._step_began = now
        if self._told is not None:
            self.allowance = Allowance(self._told, TOLD)
            return
        memory = self._memory
        if memory is not None and memory.limit and memory.learned_at:
            if self._utcnow() - memory.learned_at < RELEARN_AFTER:
                self.allowance = Allowance(memory.limit, REMEMBERED, memory.learned_at)
                return
            # Stale: learned again from the share, which held then.
            self.level = max(FIRST_LEVEL, float(int(self.share * memory.limit)))
            return
        self.level = FIRST_LEVEL

    def _advance(self, now: float) -> bool:
        """Let time do its part (the ramp's next step, or recovery after a cut).

        Returns:
            Whether the pace changed.
        """
        if self.allowance is not None:
            if self.factor < 1 and now - self._quiet_since >= RECOVER:
                steps = int((now - self._quiet_since) / RECOVER)
                self.factor = min(1.0, self.factor + steps * STEP_BACK)
                self._quiet_since += steps * RECOVER
                return True
            return False
        if self.ceiling is not None and self.level / CLEAR >= self.ceiling:
            return False  # the ceiling stops the ramp: the limit stays unknown
        # A step up once the tap has kept this level's pace for a whole window
        # (a tap that is slower than its pace learns nothing by going faster).
        full = self._waited and len(self._starts) >= max(1, int(self.level) - 1)
        if now - self._step_began < CLEAR or not full:
            return False
        self._held = self.level
        self.level += max(1.0, float(int(self.level) // 4))
        self._step_began = now
        self._waited = False
        return True

    def _learned(self, now: float, started: float) -> None:
        """The first sign of the limit: settle at the share of what got through."""
        # The level the refused request was sent at (the ramp may have gone on
        # since): the account allows less than that, and at least the level held
        # before it; what got through in one window says where in between.
        level, held = self._levels.get(started, (self.level, self._held))
        # A level held is that many a CLEAR window: in one second, one more than
        # fit in it at that spacing (41 a CLEAR window are 40 in a second).
        held = min(held, float(int(held / CLEAR * WINDOW) + 1))
        limit = max(held, min(float(self._proof), level - 1), 1.0)
        self._levels.clear()
        when = self._utcnow()
        self.allowance = Allowance(limit, LEARNED, when)
        self._slow_down(now)
        self._quiet_since = now
        if self._memory is not None:
            self._memory.remember_limit(limit, when)

    def summary(self) -> str:
        """One line for the end of the run: the pace, the limit, the refusals."""
        with self._lock:
            refused = f"{self.refused} of {self.answered} requests refused (429)"
            if not self._started:
                return f"no request sent; {refused}"
            pace = f"pace {self.rate:.2g} requests/s"
            if self.allowance is None:
                reached = f"at least {self._proof}/s"
                why = (
                    "max_requests_per_second stopped the learning"
                    if self.ceiling is not None and self.rate >= self.ceiling
                    else "the run ended before the limit was reached"
                )
                return f"{pace}; the account allows {reached} ({why}); {refused}"
            allowance = self.allowance
            source = {
                TOLD: "told by account_requests_per_second",
                LEARNED: "learned in this run",
                REMEMBERED: "remembered from "
                + (allowance.learned_at or self._utcnow()).strftime(
                    "%Y-%m-%d %H:%M UTC"
                ),
            }[allowance.source]
            capped = (
                ", capped by max_requests_per_second"
                if self.ceiling is not None
                and self.ceiling < self.share * allowance.limit / CLEAR
                else ""
            )
            slowed = f", slowed {self.cuts} times for others" if self.cuts else ""
            return (
                f"{pace} ({self.share:.0%} of the account's {allowance.limit:g}/s, "
                f"{source}{capped}{slowed}); {refused}"
            )
