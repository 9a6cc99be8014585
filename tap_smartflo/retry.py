"""Retrying transient failures: exponential backoff with jitter, bounded in time.

Shared by the streams' page requests and the login, so that both survive the same
faults the same way.
"""

from __future__ import annotations

import email.utils
import logging
import random
import re
import threading
import time
import typing as t
from dataclasses import dataclass
from http import HTTPStatus

import requests
from singer_sdk.exceptions import RetriableAPIError

from tap_smartflo.errors import ContentError, GaveUpError, RetryAtOnceError
from tap_smartflo.normalize import NormalizationError, parse_time

if t.TYPE_CHECKING:
    from tap_smartflo.pacing import Pacer

_T = t.TypeVar("_T")
#: A bare number in ``retry_after`` this large is a moment (epoch seconds), not a wait.
_EPOCH_SECONDS = 10**9

#: The reason OpenSSL gives, as requests quotes it deep in its message.
_TLS_REASON = re.compile(r"\[SSL(?:: [A-Z_]+)?\][^'\")(]*")
#: Failures worth trying again: the server or the network may do better next time.
TRANSIENT = (
    RetriableAPIError,
    requests.exceptions.Timeout,
    requests.exceptions.ConnectionError,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
    ConnectionResetError,
)


@dataclass
class RetryPolicy:
    """How long to keep trying one request, and how long to wait in between."""

    initial_wait: float = 1.0
    budget: float = 300.0
    max_wait: float = 60.0
    logger: logging.Logger = logging.getLogger("tap-smartflo")  # noqa: RUF009
    pacer: Pacer | None = None
    #: The level of the line each retry logs (a caller that says in one line what
    #: came of its retries lowers it).
    retry_log_level: int = logging.WARNING
    #: What the user can do when the retries outlast ``budget`` (if anything), and
    #: the budget's name.
    advice: str = "try again later, or raise retry_max_seconds"
    budget_name: str = "retry_max_seconds"

    def run(
        self,
        attempt: t.Callable[[], _T],
        *,
        what: str,
        cancelled: threading.Event | None = None,
    ) -> _T:
        """Call ``attempt`` until it succeeds, a fatal error, or the budget is spent.

        A wait between tries ends early when ``cancelled`` is set.

        Raises:
            GaveUpError: when transient failures outlast the budget.
        """
        start = time.monotonic()
        tries = 0
        last_persistent: str | None = None
        while True:
            tries += 1
            try:
                return attempt()
            except RetryAtOnceError:
                continue
            except TRANSIENT as exc:
                reason = describe(exc)
                if (
                    verdict := persistent(exc)
                ) is not None and reason == last_persistent:
                    msg = f"{what} failed twice the same way ({reason}): {verdict}"
                    raise GaveUpError(msg) from None
                last_persistent = reason if verdict is not None else None
                wait = self.wait_after(exc, tries)
                elapsed = time.monotonic() - start
                if elapsed + wait > self.budget:
                    if (told := server_wait(exc)) is not None:
                        msg = (
                            f"{what}: Smartflo asks to wait {told:.0f} s before "
                            f"trying again ({reason}), longer than {self.budget_name} "
                            f"({self.budget:.0f} s) allows: try again later"
                        )
                        raise GaveUpError(msg) from None
                    msg = (
                        f"{what} kept failing for {elapsed:.0f} s ({tries} tries; "
                        f"last: {reason}). Smartflo may be down or limiting this "
                        f"account{': ' if self.advice else ''}{self.advice}"
                    )
                    raise GaveUpError(msg) from None
                self.logger.log(
                    self.retry_log_level,
                    "%s failed (%s); retry %d in %.1f s",
                    what,
                    reason,
                    tries,
                    wait,
                )
                (cancelled or threading.Event()).wait(wait)

    def wait_after(self, exc: BaseException, tries: int) -> float:
        """How long to wait before the next try.

        What the server said when it said it (a Retry-After header, or a
        ``retry_after`` time in the body, as a throttled login answers); for a 429
        without it, the pacer's new interval (the pacer, not a blind backoff, finds
        the account's pace); otherwise exponential with jitter.
        """
        if (told := server_wait(exc)) is not None:
            return told
        if self.pacer is not None and self.pacer.rate and is_rate_limited(exc):
            return self.pacer.interval
        ceiling = min(self.max_wait, self.initial_wait * 2 ** (tries - 1))
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 (jitter, not crypto)


def describe(exc: BaseException) -> str:
    """A short reason for a log line: never a URL's query or a header."""
    if isinstance(exc, RetriableAPIError):
        return str(exc)
    if isinstance(exc, requests.exceptions.SSLError) and (
        found := _TLS_REASON.search(str(exc))
    ):
        return f"{type(exc).__name__}: {found.group().strip()}"
    return type(exc).__name__


def persistent(exc: BaseException) -> str | None:
    """What a failure means if it comes twice the same way (None: it is transient).

    A body that is not valid JSON, and a TLS failure (a certificate, or a server
    that does not speak TLS), are retried once; the same failure again is no
    passing fault, and waiting out the retry budget would only hide it. A
    handshake cut short (an EOF: a reset, a proxy) is a passing fault.
    """
    if isinstance(exc, ContentError):
        return exc.verdict
    if isinstance(exc, requests.exceptions.SSLError) and "EOF" not in describe(exc):
        return (
            "a TLS failure (a certificate or the protocol), not an outage: check "
            "that api_url's scheme and host are right, and the CA bundle "
            "(REQUESTS_CA_BUNDLE) if a proxy inspects TLS"
        )
    return None


def is_rate_limited(exc: BaseException) -> bool:
    """Whether ``exc`` is the server's 429."""
    response = getattr(exc, "response", None)
    return response is not None and response.status_code == HTTPStatus.TOO_MANY_REQUESTS


def server_wait(exc: BaseException) -> float | None:
    """Seconds the server asked to wait before the next try, if it said.

    A ``Retry-After`` header (seconds or an HTTP date), or a ``retry_after`` field in
    a JSON body: a time (``Y-m-d H:i:s``, India Standard Time like every naive
    Smartflo time) or seconds. A wait of zero, or a moment already past (the
    server's clock behind ours), is no hint: trying again at once would hammer a
    server that keeps refusing, so the caller backs off as if nothing was said.
    """
    response = getattr(exc, "response", None)
    if response is None:
        return None
    if value := response.headers.get("Retry-After"):
        told = _header_wait(value)
    else:
        try:
            body = response.json()
        except (ValueError, RecursionError):
            return None
        told = _body_wait(body.get("retry_after") if isinstance(body, dict) else None)
    return told if told is not None and told > 0 else None


def _body_wait(value: object) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip()
    if text.isdigit() and int(text) < _EPOCH_SECONDS:
        return float(text)  # seconds to wait, not a moment
    try:
        moment = parse_time(value)
    except NormalizationError:
        return None
    return None if moment is None else moment.timestamp() - time.time()


def _header_wait(value: str) -> float | None:
    if value.strip().isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return moment.timestamp() - time.time()
