"""What can go wrong, and a pure judgement of each HTTP answer.

Every permanent failure carries a message that says what to fix; the tap turns it
into one log line and exit code 1. Transient failures are the SDK's
``RetriableAPIError``, which the retry policy tries again.
"""

from __future__ import annotations

import re
import typing as t
from http import HTTPStatus

from singer_sdk.exceptions import FatalAPIError, RetriableAPIError

from tap_smartflo import redact

if t.TYPE_CHECKING:
    import requests


#: The most characters of a server's text (a message, a Location) an error quotes.
QUOTED = 200


class SmartfloError(FatalAPIError):
    """A permanent failure, with a message that says what to fix."""


class RunFailedError(SmartfloError):
    """Streams could not be read, though the run went on: one line for each."""

    def __init__(self, lines: list[str]) -> None:  # noqa: D107
        super().__init__("; ".join(lines))
        self.lines = lines


class EndpointError(SmartfloError):
    """The API refuses one endpoint (403, 404) while others may work."""

    def __init__(self, message: str, *, status: int, path: str, said: str = "") -> None:
        """Say why, with the HTTP status, the path it answered and what it said."""
        super().__init__(message)
        self.status = status
        self.path = path
        self.said = said


class ErrorBodyError(SmartfloError):
    """The API answered an error object (200, with a message) where records belong."""

    def __init__(self, message: str, *, path: str) -> None:
        """Say why, with the path that answered."""
        super().__init__(message)
        self.path = path


class CredentialsRefusedError(SmartfloError):
    """Smartflo refused the credentials (HTTP 401): no request of the run can pass."""


class LoginRefusedError(CredentialsRefusedError):
    """Smartflo refused the email and password; retrying could lock the account."""


class GaveUpError(SmartfloError):
    """A request kept failing for the whole retry budget."""


class PaginationError(SmartfloError):
    """The API's pages do not add up: going on would loop or duplicate records."""


class RequestRefusedError(SmartfloError):
    """The API refused this one request (a 4xx other than 401, 403, 404, 429).

    What to make of it is the caller's to judge: a stream that asked for one id
    may skip that id, one that asked for a time window may name it.
    """

    def __init__(self, message: str, *, status: int, said: str) -> None:
        """Say why; ``said`` is the API's message (``server_message``)."""
        super().__init__(message)
        self.status = status
        self.said = said


class LimitRefusedError(RequestRefusedError):
    """The API refused the ``limit`` asked for (a 422, or a 400 that names it)."""

    def __init__(self, message: str, *, status: int, said: str) -> None:
        """Say why; ``said`` is the API's message (``server_message``)."""
        super().__init__(message, status=status, said=said)
        #: The numbers in the API's message: one may be the limit it accepts.
        self.numbers = tuple(int(n) for n in re.findall(r"\d+", said))


class ContentError(RetriableAPIError):
    """A whole body the tap cannot read (invalid JSON, not JSON cut short).

    Retried once (a proxy may have mangled it); the same again is a fault in the
    content, which no wait mends (see ``retry.persistent``).
    """

    verdict = (
        "the content is broken, not the connection, so the tap stopped rather than "
        "retry (if it persists, tell Smartflo support)"
    )


class RetryAtOnceError(RetriableAPIError):
    """Retry at once, without a backoff wait (a renewed token, for example)."""


def server_message(body: object) -> str:
    """``": <message>"`` when the API said why in its body, else nothing.

    A message can quote what the client sent (a refused token, say): it is masked
    before it is cut to a length fit for a log line (see ``redact.clip``).
    """
    message = body.get("message") if isinstance(body, dict) else None
    return f": {redact.clip(str(message), QUOTED)}" if message else ""


def error_for(
    status: int,
    *,
    path: str,
    credential: str,
    said: str = "",
    response: requests.Response | None = None,
) -> Exception | None:
    """The error an answer with HTTP ``status`` on ``path`` means; None for success.

    ``credential`` names the setting to check ("api_token", or "email and password")
    and ``said`` is the API's own message (``server_message``). A 401 ends the run;
    403 and 404 refuse one endpoint (on Smartflo an unknown path answers 403, so a
    403 may also mean a wrong ``api_url``); 429 and 5xx are worth retrying, with the
    ``response`` kept for its Retry-After; a 422, or a 400 whose message names the
    limit, refuses the ``limit`` asked for (the stream then asks for less). A
    redirect is never followed (it would carry the credentials to an address nobody
    configured): it ends the run naming where it points.
    """
    if status == HTTPStatus.UNAUTHORIZED:
        return CredentialsRefusedError(
            f"Smartflo refused the credentials (HTTP 401 on {path}{said}): check "
            f"that {credential} is valid and not expired"
        )
    if status in {HTTPStatus.FORBIDDEN, HTTPStatus.NOT_FOUND}:
        message = (
            f"Smartflo answered HTTP 403 on {path}{said}: either the {credential} "
            "has no permission for this endpoint, or api_url or the path is wrong "
            "(Smartflo answers 403 for paths it does not know)"
            if status == HTTPStatus.FORBIDDEN
            else f"Smartflo answered HTTP 404 on {path}: this server does not have "
            "the endpoint (check api_url)"
        )
        return EndpointError(message, status=status, path=path, said=said)
    if (
        status == HTTPStatus.TOO_MANY_REQUESTS
        or status >= HTTPStatus.INTERNAL_SERVER_ERROR
    ):
        return RetriableAPIError(f"HTTP {status} on {path}{said}", response)
    if status >= HTTPStatus.BAD_REQUEST:
        message = f"Smartflo refused the request (HTTP {status} on {path}){said}"
        refuses_limit = status == HTTPStatus.UNPROCESSABLE_ENTITY or (
            status == HTTPStatus.BAD_REQUEST and "limit" in said.lower()
        )
        return (
            LimitRefusedError(message, status=status, said=said)
            if refuses_limit
            else RequestRefusedError(message, status=status, said=said)
        )
    if status >= HTTPStatus.MULTIPLE_CHOICES:
        return redirect_error(status, path, response)
    return None


def redirect_error(
    status: int, path: str, response: requests.Response | None
) -> SmartfloError:
    """The error for a redirect (3xx): where it points, and what to change."""
    location = response.headers.get("Location", "") if response is not None else ""
    target = f" to {redact.clip(location.split('?')[0], QUOTED)}" if location else ""
    return SmartfloError(
        f"Smartflo answered HTTP {status} on {path}, which redirects{target}: the tap "
        "does not follow redirects, so that the credentials go only to api_url; "
        "set api_url to the address the API now answers at"
    )
