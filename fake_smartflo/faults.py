"""Failures to inject, one at a time or as a storm, and the account's rate limit.

The limit can be shared: with a steady neighbour (``background_rate``) using part
of it, and with other integrations' bursts (``refuse_every``).
"""

from __future__ import annotations

import json
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from fake_smartflo.data import IST, Dataset
from fake_smartflo.render import CALL_DATE_FORMAT

FAULT_KINDS = (
    "429",  # the documented body, success as a string
    "429-retry-after",  # the same with Retry-After: 1
    "500",
    "502-html",  # a gateway's HTML page
    "503",
    "reset",  # the connection closes with no response
    "hang",  # no response for hang_seconds
    "truncated",  # Content-Length promises more than arrives
    "not-json",  # 200 with an HTML body
    "half-json",  # 200 with a complete HTTP body holding half a JSON document
)
#: A throttled login, as one public client saw it: 429 with a body field
#: ``retry_after`` written as ``Y-m-d H:i:s`` in IST (``login_retry_after`` s on).
LOGIN_THROTTLED = "login-429-retry-after-body"
#: A refusal of one request (403, as for a token without permission), for a test
#: to place on one path; not transient, so never part of a storm (FAULT_KINDS).
REFUSED = "403"
#: The fault a request over ``rate_limit`` gets.
RATE_LIMITED = "rate-limit"
#: The fault every ``refuse_every``-th request gets (other integrations' bursts).
REFUSED_FOR_OTHERS = "rate-limit-others"

_TOO_MANY = json.dumps({"success": "false", "message": "Too many requests."}).encode()
_SERVER_ERROR = json.dumps({"success": False, "message": "Server error"}).encode()
#: kind -> (status, body, headers) for the faults that are plain responses.
CANNED_FAULTS: dict[str, tuple[int, bytes, dict[str, str]]] = {
    "429": (429, _TOO_MANY, {}),
    "429-retry-after": (429, _TOO_MANY, {"Retry-After": "1"}),
    RATE_LIMITED: (429, _TOO_MANY, {}),
    REFUSED_FOR_OTHERS: (429, _TOO_MANY, {}),
    "500": (500, _SERVER_ERROR, {}),
    "503": (503, _SERVER_ERROR, {}),
    "502-html": (502, b"<html><body>Bad Gateway</body></html>", {}),
    "not-json": (200, b"<html><body>Maintenance</body></html>", {}),
    "half-json": (200, b'{"page": 1, "size": 10, "results": [{', {}),
    REFUSED: (403, json.dumps({"message": "Forbidden"}).encode(), {}),
}


@dataclass
class Fault:
    """One injected failure: ``kind`` from FAULT_KINDS, on ``path`` (any if None)."""

    kind: str
    path: str | None = None


@dataclass
class Faults(Dataset):
    """Which requests fail, and how; the rest are served as usual."""

    #: Faults to inject, in order, into the next requests (see ``Fault``).
    faults: deque[Fault] = field(default_factory=deque)
    #: A storm: each data request fails with this probability, with a random kind.
    fault_rate: float = 0.0
    fault_kinds: tuple[str, ...] = ()
    #: Seconds a "hang" fault holds the connection before closing it.
    hang_seconds: float = 30.0
    #: The account's limit: requests in any one-second window beyond it get 429.
    rate_limit: float = 0.0
    #: Count ``rate_limit`` in fixed windows (each clock second, as many PHP
    #: throttles do) rather than in any one second.
    fixed_windows: bool = False
    #: Another integration on the account, steadily using this many of
    #: ``rate_limit``'s requests a second (its requests always take their slot).
    background_rate: float = 0.0
    #: Every Nth request gets the documented 429 whatever the pace (other
    #: integrations bursting); such a refusal takes no slot of ``rate_limit``.
    refuse_every: int = 0
    #: Seconds a throttled login (LOGIN_THROTTLED) asks the client to wait.
    login_retry_after: int = 2
    #: The account moved: when set, every request answers 307 (a redirect that
    #: keeps the method and body) to this base URL, path and query kept.
    moved_to: str = ""
    _accepted: deque[float] = field(default_factory=deque, init=False, repr=False)
    _background_next: float = field(default=float("-inf"), init=False, repr=False)
    _received: int = field(default=0, init=False, repr=False)

    def next_fault(self, path: str) -> str | None:
        """The fault to inject into this request, if any."""
        with self.lock:
            if self.faults and self.faults[0].path in {None, path}:
                return self.faults.popleft().kind
            if self.fault_rate and self.rng.random() < self.fault_rate:
                return self.rng.choice(self.fault_kinds or FAULT_KINDS)
        return None

    def over_rate_limit(self) -> bool:
        """Whether a request now exceeds the account's requests per second."""
        if not self.rate_limit:
            return False
        now = time.monotonic()
        with self.lock:
            self._background_requests(now)
            if self.fixed_windows:
                while self._accepted and int(self._accepted[0]) != int(now):
                    self._accepted.popleft()
            while self._accepted and now - self._accepted[0] >= 1.0:
                self._accepted.popleft()
            if len(self._accepted) >= self.rate_limit:
                return True
            self._accepted.append(now)
            return False

    def _background_requests(self, now: float) -> None:
        """The neighbour's requests up to ``now`` take their slots (lock held)."""
        if not self.background_rate:
            return
        # Older ones would leave the window at once: start at most a second back.
        moment = max(self._background_next, now - 1.0)
        while moment <= now:
            self._accepted.append(moment)
            moment += 1 / self.background_rate
        self._background_next = moment

    def refused_for_others(self) -> bool:
        """Whether this request is every ``refuse_every``-th (counts every request)."""
        if not self.refuse_every:
            return False
        with self.lock:
            self._received += 1
            return self._received % self.refuse_every == 0

    def throttled_login(self) -> dict[str, object]:
        """The body of a LOGIN_THROTTLED answer: try again ``login_retry_after`` on."""
        until = datetime.now(IST) + timedelta(seconds=self.login_retry_after)
        return {
            "success": False,
            "message": "Too many login attempts.",
            "retry_after": until.strftime(CALL_DATE_FORMAT),
        }
