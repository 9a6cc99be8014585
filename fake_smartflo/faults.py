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
    #: Another integration on the account (a CRM), steadily sending this many
    #: requests a second, refused like the tap's when the limit is full (it may
    #: start or stop while the server runs).
    background_rate: float = 0.0
    #: Every Nth request gets the documented 429 whatever the pace (other
    #: integrations bursting); such a refusal takes no slot of ``rate_limit``.
    refuse_every: int = 0
    #: Seconds a throttled login (LOGIN_THROTTLED) asks the client to wait.
    login_retry_after: int = 2
    #: The account moved: when set, every request answers 307 (a redirect that
    #: keeps the method and body) to this base URL, path and query kept.
    moved_to: str = ""
    #: The neighbour's requests so far, and how many of them the limit refused.
    background_sent: int = field(default=0, init=False)
    background_refused: int = field(default=0, init=False)
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
            return not self._admit(now)

    def _admit(self, moment: float) -> bool:
        """Count a request arriving at ``moment`` if the limit has room (lock held)."""
        accepted = self._accepted
        if self.fixed_windows:
            while accepted and int(accepted[0]) != int(moment):
                accepted.popleft()
        while accepted and moment - accepted[0] >= 1.0:
            accepted.popleft()
        if len(accepted) >= self.rate_limit:
            return False
        accepted.append(moment)
        return True

    def _background_requests(self, now: float) -> None:
        """The neighbour's requests up to ``now``, refused like anyone's (lock held).

        ``background_refused`` counts those the limit refused.
        """
        if not self.background_rate:
            self._background_next = float("-inf")
            return
        interval = 1 / self.background_rate
        moment = self._background_next
        if moment < now - 1.0:
            # A second or more without the tap: the neighbour alone fits (its rate
            # is below the limit); the requests before the last second only count.
            if moment > float("-inf"):
                skipped = int((now - 1.0 - moment) / interval) + 1
                self.background_sent += skipped
                moment += skipped * interval
            else:
                moment = now
        while moment <= now:
            self.background_sent += 1
            if not self._admit(moment):
                self.background_refused += 1
            moment += interval
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
