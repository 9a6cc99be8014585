"""Sending requests to Smartflo and reading their answers.

One ``Transport`` per tap: one connection pool, one authenticator, one pace and one
retry policy for every stream, since the account has one rate limit.
"""

from __future__ import annotations

import codecs
import dataclasses
import logging
import os
import time
import typing as t
from dataclasses import dataclass
from decimal import Decimal
from http import HTTPStatus

import msgspec
import requests
from singer_sdk import metrics
from singer_sdk.exceptions import RetriableAPIError

from tap_smartflo.bodies import DEADLINE_TIMEOUTS, MEGABYTE, read_body
from tap_smartflo.errors import (
    ContentError,
    ErrorBodyError,
    RetryAtOnceError,
    SmartfloError,
    error_for,
    server_message,
)
from tap_smartflo.retry import is_rate_limited

if t.TYPE_CHECKING:
    import threading

    from tap_smartflo.auth import SmartfloAuth
    from tap_smartflo.pacing import Pacer
    from tap_smartflo.report import RunReport
    from tap_smartflo.retry import RetryPolicy

#: Pages are parsed with msgspec (three times faster than requests' own parser);
#: decimals stay exact.
_JSON = msgspec.json.Decoder(float_hook=Decimal)
_METRICS = logging.getLogger("singer_sdk.metrics")

#: A parsed page: its envelope (the body's other keys, ``{}`` for a bare array) and
#: its records.
Page = tuple[dict[str, t.Any], list[t.Any]]


class CancelledError(Exception):
    """The page is no longer wanted (the stream ended or failed)."""


def make_session(url: str, connections: int) -> requests.Session:
    """A session that reads proxy and CA settings from the environment once.

    requests otherwise scans the whole environment for proxies on every request,
    which costs more CPU than parsing the page. It keeps a connection alive for
    each concurrent request.
    """
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_maxsize=max(10, connections))
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.proxies.update(requests.utils.get_environ_proxies(url))
    session.verify = (
        os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    )
    session.trust_env = False
    return session


@dataclass(kw_only=True)
class Transport:
    """Sends a prepared request, paced and retried, and returns the parsed page."""

    session: requests.Session
    auth: SmartfloAuth
    retry: RetryPolicy
    pacer: Pacer
    #: Seconds to wait for an answer before abandoning (and retrying) a request.
    timeout: float
    logger: logging.Logger
    #: Counts each stream's requests, retries and 429s.
    report: RunReport
    #: The largest body (after decompression) the tap reads.
    max_bytes: int = 50 * MEGABYTE

    def bounded(self, budget: float, timeout: float, **retry: t.Any) -> Transport:
        """This transport within a budget of its own (never more than its own).

        ``retry`` changes more of the retry policy (how it reports, for example).
        """
        policy = dataclasses.replace(
            self.retry, budget=min(self.retry.budget, budget), **retry
        )
        return dataclasses.replace(
            self, retry=policy, timeout=min(self.timeout, timeout)
        )

    def fetch(  # noqa: PLR0913 (one request and how to describe it)
        self,
        prepared: requests.PreparedRequest,
        *,
        stream: str,
        path: str,
        records_key: str | None,
        what: str,
        cancelled: threading.Event | None = None,
    ) -> Page:
        """The parsed page ``prepared`` asks for, retrying transient faults.

        The records are the list under ``records_key`` in the body, or the body
        itself when ``records_key`` is None (an endpoint that answers a bare list).
        ``what`` names the page in log lines and errors ("/v1/contacts (page 3)").

        Raises:
            CancelledError: when ``cancelled`` is set before a try.
            SmartfloError: for an answer that retrying cannot mend.
        """
        tries = 0

        def attempt() -> Page:
            nonlocal tries
            if cancelled is not None and cancelled.is_set():
                raise CancelledError
            started = self.pacer.wait()
            if cancelled is not None and cancelled.is_set():
                # No longer wanted while it waited for its turn: not sent, so the
                # account's allowance is not spent on it.
                raise CancelledError
            tries += 1
            self.report.sent(stream, retry=tries > 1)
            try:
                page = self._send(prepared, stream, path, records_key)
            except RetriableAPIError as exc:
                if is_rate_limited(exc):
                    self.pacer.throttled(started)
                    self.report.throttled(stream)
                raise
            self.pacer.succeeded(started)
            return page

        return self.retry.run(attempt, what=what, cancelled=cancelled)

    def _send(
        self,
        prepared: requests.PreparedRequest,
        stream: str,
        path: str,
        records_key: str | None,
    ) -> Page:
        # Signed at every try: another thread may have renewed the token. A login
        # this needs keeps to this transport's retry budget and timeout.
        self.auth.sign(prepared, self.retry, self.timeout)
        if self.logger.isEnabledFor(logging.DEBUG):
            # The headers as sent: the secret in them is masked in every log
            # record (see redact).
            self.logger.debug(
                "%s %s headers=%s",
                prepared.method,
                prepared.url,
                dict(prepared.headers),
            )
        # Never follow a redirect: it would carry the token elsewhere (see errors).
        started = time.monotonic()
        response = self.session.send(
            prepared, timeout=self.timeout, allow_redirects=False, stream=True
        )
        read_body(
            response,
            path=path,
            deadline=started + DEADLINE_TIMEOUTS * self.timeout,
            max_bytes=self.max_bytes,
        )
        _log_duration(response, stream, path)
        self._judge(response, path)
        body = parse(response, path)
        records = records_in(body, records_key, path)
        self.auth.worked(prepared)
        return (body if isinstance(body, dict) else {}), records

    def _judge(self, response: requests.Response, path: str) -> None:
        """Raise the error an unsuccessful ``response`` means."""
        status = response.status_code
        if status < HTTPStatus.MULTIPLE_CHOICES:
            return
        if status in {
            HTTPStatus.UNAUTHORIZED,
            HTTPStatus.FORBIDDEN,
        } and self.auth.renew_after_refusal(response.request):
            msg = f"HTTP {status} on {path}: renewing the token"
            raise RetryAtOnceError(msg, response)
        error = error_for(
            status,
            path=path,
            credential=self.auth.credential,
            said=server_message(_body_or_none(response)),
            response=response,
        )
        if error is not None:
            raise error


class OneRecord(str):
    """A ``records_key`` under which the body holds one record (an object), not a list.

    ``GET /v1/user/{id}`` answers ``{"data": {...}}``: that object is the page's one
    record. Still text, so it goes wherever a ``records_key`` goes.
    """

    __slots__ = ()


def records_in(body: object, records_key: str | None, path: str) -> list[t.Any]:
    """The records of the page ``body``: under ``records_key``, or the body itself.

    Raises:
        ErrorBodyError: when the API answered an error object where the list belongs.
        SmartfloError: when the body is no Smartflo page at all.
    """
    found = body
    if records_key is not None:
        found = body.get(records_key) if isinstance(body, dict) else None
    if isinstance(found, list):
        return found
    if isinstance(records_key, OneRecord) and isinstance(found, dict) and found:
        return [found]
    where = "a list" if records_key is None else f"a '{records_key}' list"
    if said := server_message(body):
        msg = f"{path} answered an error instead of {where}{said}"
        raise ErrorBodyError(msg, path=path)
    msg = (
        f"{path} answered without {where} (this does not look like a Smartflo "
        "page: check api_url)"
    )
    raise SmartfloError(msg)


def parse(response: requests.Response, path: str) -> object:
    """The JSON body of ``response``.

    Raises:
        RetriableAPIError: for a body cut short, or not JSON at all (a gateway's
            HTML page): a passing fault.
        ContentError: for JSON that cannot be read (invalid UTF-8, a byte-order
            mark, NaN, nesting too deep): retried once, then the run ends.
    """
    content = response.content
    try:
        return _JSON.decode(content)
    except (ValueError, RecursionError) as exc:
        status = response.status_code
        meant_json = content.lstrip()[:1] in (b"{", b"[")
        if content.startswith(codecs.BOM_UTF8):
            detail = "it starts with a byte-order mark"
        elif isinstance(exc, RecursionError):
            detail = "nested too deep"
        elif meant_json and "truncated" not in str(exc):
            detail = str(exc)
        else:
            msg = f"{path} answered {status} with a body that is not complete JSON"
            raise RetriableAPIError(msg, response) from None
        msg = f"{path} answered {status} with a body that is not valid JSON ({detail})"
        raise ContentError(msg, response) from None


def _body_or_none(response: requests.Response) -> object:
    try:
        return _JSON.decode(response.content)
    except (ValueError, RecursionError):
        return None


def _log_duration(response: requests.Response, stream: str, path: str) -> None:
    """The SDK's ``http_request_duration`` metric, as its own requests log it."""
    succeeded = response.status_code < HTTPStatus.BAD_REQUEST
    metrics.log(
        _METRICS,
        metrics.Point(
            "timer",
            metric=metrics.Metric.HTTP_REQUEST_DURATION,
            value=response.elapsed.total_seconds(),
            tags={
                metrics.Tag.STREAM: stream,
                metrics.Tag.ENDPOINT: path,
                metrics.Tag.HTTP_STATUS_CODE: response.status_code,
                metrics.Tag.STATUS: (
                    metrics.Status.SUCCEEDED if succeeded else metrics.Status.FAILED
                ),
            },
        ),
    )
