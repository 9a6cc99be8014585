"""Reading a response's body within a deadline and a size, as it streams in."""

from __future__ import annotations

import time
import typing as t

import requests
import urllib3
from singer_sdk.exceptions import RetriableAPIError

from tap_smartflo.errors import SmartfloError

#: A request's whole exchange (connect, headers, body) may take this many times
#: ``request_timeout``, which bounds each wait for a byte: a server that trickles
#: a body a byte a second never waits that long.
DEADLINE_TIMEOUTS = 2
MEGABYTE = 1 << 20
#: Bytes read at a time (at most: a read returns what has arrived).
_CHUNK = 1 << 16


def read_body(
    response: requests.Response, *, path: str, deadline: float, max_bytes: int
) -> None:
    """Read the streamed ``response``'s body by ``deadline``, ``max_bytes`` at most.

    The size counts decompressed bytes, checked as they arrive (a small gzip body
    can expand a thousandfold). The body is then the response's ``content``.

    Raises:
        RetriableAPIError: when the deadline passes first.
        SmartfloError: when the body is larger than ``max_bytes``.
        requests.exceptions.RequestException: as requests' own reading would.
    """
    body = bytearray()
    try:
        declared = int(response.headers.get("Content-Length") or 0)
        while declared <= max_bytes:
            if time.monotonic() > deadline:
                msg = (
                    f"{path} took more than {DEADLINE_TIMEOUTS} times request_timeout "
                    "to answer whole"
                )
                raise RetriableAPIError(msg, response)
            chunk = _read1(response)
            if not chunk:
                # requests' own attribute for a body read (its public ``content``
                # reads it from here); a bytearray, not a copy of it.
                response._content = body  # type: ignore[assignment]  # noqa: SLF001
                return
            body += chunk
            if len(body) > max_bytes:
                break
        megabytes = max_bytes / MEGABYTE
        msg = (
            f"{path} answered more than {megabytes:g} MB "
            "(max_response_megabytes): lower page_size, or raise "
            "max_response_megabytes if its pages are really this large"
        )
        raise SmartfloError(msg)
    finally:
        if response._content is False:  # noqa: SLF001 (not read whole: drop it)
            response.close()


def _read1(response: requests.Response) -> bytes:
    """What has arrived of the body (decompressed), errors as requests names them."""
    try:
        return t.cast("bytes", response.raw.read1(_CHUNK, decode_content=True))
    except urllib3.exceptions.ProtocolError as exc:
        raise requests.exceptions.ChunkedEncodingError(exc) from None
    except urllib3.exceptions.DecodeError as exc:
        raise requests.exceptions.ContentDecodingError(exc) from None
    except urllib3.exceptions.ReadTimeoutError as exc:
        raise requests.exceptions.ConnectionError(exc) from None
    except urllib3.exceptions.SSLError as exc:
        raise requests.exceptions.SSLError(exc) from None
