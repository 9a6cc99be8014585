"""What the tap remembers of the account between runs, kept in its STATE.

The STATE a run emits carries, beside the SDK's ``bookmarks``, one object of the
tap's own under ``account``::

    "account": {
        "requests_per_second": 4,                    # the account's rate limit
        "learned_at": "2026-12-06T09:00:00+00:00",   # when it was learned
        "page_sizes": {"/v1/contacts": 500}          # what each endpoint serves
    }

so it travels wherever the bookmarks do (Meltano's state backend, a ``--state``
file). A value of the wrong shape is dropped with one warning, never fatal: the
tap then learns it again.

Any thread may change the memory (the pacer learns on the threads that fetch
pages); the STATE changes only at ``flush``, which the thread that writes STATE
messages calls (after each page, and before the run's last STATE), so a STATE is
never changed while it is written.
"""

from __future__ import annotations

import math
import threading
import typing as t
from datetime import datetime, timezone

from tap_smartflo.normalize import NormalizationError, format_utc, parse_time
from tap_smartflo.redact import quoted

if t.TYPE_CHECKING:
    from collections.abc import Callable, Mapping

#: The STATE's key for what the tap remembers of the account.
ACCOUNT_KEY = "account"


class AccountMemory:
    """The remembered rate limit and page sizes, mirrored into the tap's STATE."""

    def __init__(self, state: dict[str, t.Any]) -> None:
        """Remember nothing yet; ``flush`` mirrors the memory into ``state``."""
        self._state = state
        self._lock = threading.Lock()
        self.limit: float | None = None
        self.learned_at: datetime | None = None
        self.page_sizes: dict[str, int] = {}
        self._changed = False

    def load(self, saved: object, warn: Callable[[str], None]) -> None:
        """Read ``saved``, what an earlier run left under ``account`` (any shape).

        ``warn`` logs one line about each value that is dropped.
        """
        with self._lock:
            if saved is not None:
                self._read(saved, warn)
            self._changed = True
        self.flush()

    def _read(self, saved: object, warn: Callable[[str], None]) -> None:
        if not isinstance(saved, dict):
            warn(
                f"The state's '{ACCOUNT_KEY}' is not an object ({quoted(saved)}): "
                "ignored, the tap learns the account's limits again"
            )
            return
        limit, learned_at = saved.get("requests_per_second"), saved.get("learned_at")
        if limit is not None or learned_at is not None:
            try:
                self.limit, self.learned_at = _limit(limit), _moment(learned_at)
            except (TypeError, ValueError, NormalizationError):
                warn(
                    f"The state's remembered rate limit ({quoted(limit)} requests a "
                    f"second, learned at {quoted(learned_at)}) is malformed: "
                    "ignored, the tap learns it again"
                )
                self.limit = self.learned_at = None
        sizes = saved.get("page_sizes", {})
        if not isinstance(sizes, dict):
            sizes = {"": sizes}
        for path, size in sizes.items():
            if isinstance(size, int) and not isinstance(size, bool) and size > 0:
                self.page_sizes[str(path)] = size
            else:
                warn(
                    f"The state's remembered page size for {path or 'page_sizes'} "
                    f"({quoted(size)}) is malformed: ignored, the tap learns it again"
                )

    def remember_limit(self, limit: float, learned_at: datetime) -> None:
        """The account allows ``limit`` requests a second (learned ``learned_at``)."""
        with self._lock:
            self.limit, self.learned_at = limit, learned_at
            self._changed = True

    def remember_page_size(self, path: str, size: int) -> None:
        """``path`` serves ``size`` records a page."""
        with self._lock:
            self.page_sizes = {**self.page_sizes, path: size}
            self._changed = True

    def flush(self) -> None:
        """Write the memory into the STATE, if it changed (on the STATE's thread)."""
        with self._lock:
            if not self._changed:
                return
            self._changed = False
            account: dict[str, t.Any] = {}
            if self.limit is not None and self.learned_at is not None:
                account["requests_per_second"] = self.limit
                account["learned_at"] = format_utc(self.learned_at)
            if self.page_sizes:
                account["page_sizes"] = dict(sorted(self.page_sizes.items()))
        if account:
            self._state[ACCOUNT_KEY] = account
        else:
            self._state.pop(ACCOUNT_KEY, None)


def saved_account(state: Mapping[str, t.Any] | object) -> object:
    """The ``account`` object of a STATE (None when it has none)."""
    return state.get(ACCOUNT_KEY) if isinstance(state, dict) else None


def _limit(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError
    limit = float(value)
    if not math.isfinite(limit) or limit <= 0:
        raise ValueError
    return limit


def _moment(value: object) -> datetime:
    if not isinstance(value, str):
        raise TypeError
    moment = parse_time(value)
    if moment is None or moment > datetime.now(timezone.utc):
        raise ValueError
    return moment
