"""Authentication for the Smartflo API: a long-lived API token, or a panel login.

One authenticator per tap, shared by its streams (and their threads).
"""

from __future__ import annotations

import dataclasses
import threading
import time
import typing as t
from http import HTTPStatus

import requests
from singer_sdk.exceptions import RetriableAPIError

from tap_smartflo import redact
from tap_smartflo.bodies import DEADLINE_TIMEOUTS, MEGABYTE, read_body
from tap_smartflo.errors import QUOTED, LoginRefusedError, redirect_error

if t.TYPE_CHECKING:
    from collections.abc import Mapping

    from tap_smartflo.pacing import Pacer
    from tap_smartflo.report import RunReport
    from tap_smartflo.retry import RetryPolicy

LOGIN_PATH = "/v1/auth/login"
#: The largest login answer read (it holds a token and a few fields).
LOGIN_MAX_BYTES = MEGABYTE
#: Public integrations cache a login ~50 minutes when expires_in is missing.
DEFAULT_TOKEN_SECONDS = 3000.0


class SmartfloAuth(requests.auth.AuthBase):
    """Adds ``Authorization: Bearer <token>`` to every request."""

    #: What the user set, for error messages.
    credential = "api_token"

    def token(
        self, retry: RetryPolicy | None = None, timeout: float | None = None
    ) -> str:
        """The token to send now (logging in within ``retry`` and ``timeout``)."""
        raise NotImplementedError

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        """Authenticate ``request``."""
        return self.sign(request)

    def sign(
        self,
        request: requests.PreparedRequest,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
    ) -> requests.PreparedRequest:
        """Authenticate ``request``; a login it needs keeps to ``retry``, ``timeout``.

        A request with a short budget (discovery's) must not wait on a login that
        retries for the whole run's budget.
        """
        request.headers["Authorization"] = f"Bearer {self.token(retry, timeout)}"
        return request

    def worked(self, request: requests.PreparedRequest) -> None:
        """Note that the token ``request`` carried was accepted."""

    def renew_after_refusal(self, request: requests.PreparedRequest) -> bool:  # noqa: ARG002 (a long-lived token is never renewed)
        """Whether a refused ``request`` is worth retrying with a new token."""
        return False

    def __repr__(self) -> str:
        """Never show a secret."""
        return f"{type(self).__name__}(***)"


class TokenAuth(SmartfloAuth):
    """A long-lived API token: a refusal is final."""

    def __init__(self, api_token: str) -> None:
        """Keep the token."""
        # A token pasted from a file often ends in a newline: no header may.
        self._api_token = api_token.strip()

    def token(
        self,
        retry: RetryPolicy | None = None,  # noqa: ARG002 (a token needs no login)
        timeout: float | None = None,  # noqa: ARG002
    ) -> str:
        """The configured token."""
        return self._api_token


class LoginAuth(SmartfloAuth):
    """Short-lived tokens from ``POST /v1/auth/login``, renewed before they expire.

    A token is renewed when its ``expires_in`` (less a margin) has passed, and once
    more when the API refuses a token that used to work. A token refused on its
    first use is not renewed again: that is a permanent refusal, not an expiry.
    A refused login is never retried, since the account counts failures and locks:
    the refusal is remembered, and every later request fails with it.
    """

    credential = "email and password"

    def __init__(  # noqa: PLR0913 (the settings, and the run's collaborators)
        self,
        config: Mapping[str, t.Any],
        retry: RetryPolicy,
        session: requests.Session | None = None,
        *,
        pacer: Pacer | None = None,
        report: RunReport | None = None,
        redactor: redact.Redactor | None = None,
    ) -> None:
        """Prepare to log in with the tap's settings (``report`` counts each try).

        A login is a request like any other: it waits on ``pacer``, the account's.
        Each token a login issues is hidden by ``redactor``, the run's.
        """
        self._url = str(config["api_url"]).rstrip("/") + LOGIN_PATH
        # Missing credentials stop a sync before any request (settings.py); a
        # discovery without them never logs in.
        self._email = str(config.get("email") or "").strip()
        self._password = str(config.get("password") or "")
        self._timeout = float(config["request_timeout"])
        self._retry = retry
        self._session = session or requests.Session()
        self._report = report
        self._redactor = redactor or redact.Redactor()
        self._pacer = pacer
        self._lock = threading.Lock()
        self._token: str | None = None
        self._renew_at = 0.0
        self._confirmed = False
        self._refused: LoginRefusedError | None = None

    def token(
        self, retry: RetryPolicy | None = None, timeout: float | None = None
    ) -> str:
        """The current token, logging in first when there is none or it is due.

        The login is retried per ``retry`` (the tap's policy if None) and waits
        ``timeout`` seconds at most for an answer (``request_timeout`` if None).

        Raises:
            LoginRefusedError: when Smartflo refused this login, now or before.
        """
        with self._lock:
            if self._refused is not None:
                raise self._refused
            if self._token is None or time.monotonic() >= self._renew_at:
                # Backoff between tries, not the pace's interval: a login that
                # keeps being refused must slow down (each try still waits on the
                # pace, in _login).
                policy = dataclasses.replace(retry or self._retry, pacer=None)
                try:
                    self._token, lifetime = policy.run(
                        lambda: self._login(timeout or self._timeout),
                        what="Logging in to Smartflo",
                    )
                except LoginRefusedError as exc:
                    self._refused = exc
                    raise
                margin = min(60.0, lifetime * 0.1)
                self._renew_at = time.monotonic() + lifetime - margin
                self._confirmed = False
            return self._token

    def worked(self, request: requests.PreparedRequest) -> None:
        """Mark the current token as one the API accepts."""
        if _bearer(request) == self._token:
            self._confirmed = True

    def renew_after_refusal(self, request: requests.PreparedRequest) -> bool:
        """Drop a token that stopped working; refuse to loop on a fresh one."""
        with self._lock:
            if _bearer(request) != self._token:
                return True  # already renewed by another request
            if not self._confirmed:
                return False
            self._token = None
            return True

    def _login(self, timeout: float) -> tuple[str, float]:
        if self._report is not None:
            self._report.sent(None, retry=False)
        started = self._pacer.wait() if self._pacer is not None else 0.0
        sent = time.monotonic()
        response = self._session.post(
            self._url,
            json={"email": self._email, "password": self._password},
            headers={"Accept": "application/json"},
            timeout=timeout,
            # The password goes to api_url only, never where a redirect points.
            allow_redirects=False,
            stream=True,
        )
        # The same deadline for the whole answer as a page's, and a small cap: a
        # login's answer is a few hundred bytes.
        read_body(
            response,
            path=LOGIN_PATH,
            deadline=sent + DEADLINE_TIMEOUTS * timeout,
            max_bytes=LOGIN_MAX_BYTES,
        )
        status = response.status_code
        if self._pacer is not None:
            if status == HTTPStatus.TOO_MANY_REQUESTS:
                self._pacer.throttled(started)
            else:
                self._pacer.succeeded(started)
        if HTTPStatus.MULTIPLE_CHOICES <= status < HTTPStatus.BAD_REQUEST:
            raise redirect_error(status, LOGIN_PATH, response)
        if (
            status == HTTPStatus.TOO_MANY_REQUESTS
            or status >= HTTPStatus.INTERNAL_SERVER_ERROR
        ):
            msg = f"HTTP {status} on {LOGIN_PATH}"
            raise RetriableAPIError(msg, response)
        try:
            body = response.json()
        except (ValueError, RecursionError):
            body = None
        if not isinstance(body, dict):
            # A refusal says why in JSON; anything else is a gateway's hiccup.
            msg = f"HTTP {status} on {LOGIN_PATH} with a body that is not JSON"
            raise RetriableAPIError(msg, response)
        token = body.get("access_token")
        if (
            status < HTTPStatus.BAD_REQUEST
            and body.get("success") is not False
            and token
        ):
            self._redactor.hide(str(token))
            return str(token), _lifetime(body.get("expires_in"))
        reason = redact.clip(str(body.get("message") or f"HTTP {status}"), QUOTED)
        msg = (
            f"Smartflo refused the login for {self._email} ({reason}): check email "
            "and password (the tap does not retry, to spare the account's lock-out "
            "counter)"
        )
        raise LoginRefusedError(msg)


def _bearer(request: requests.PreparedRequest) -> str:
    return str(request.headers.get("Authorization", "")).removeprefix("Bearer ")


def _lifetime(expires_in: object) -> float:
    if not isinstance(expires_in, int | float | str):
        return DEFAULT_TOKEN_SECONDS
    try:
        seconds = float(expires_in)
    except ValueError:
        return DEFAULT_TOKEN_SECONDS
    return seconds if seconds > 0 else DEFAULT_TOKEN_SECONDS
