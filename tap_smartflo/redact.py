"""Secrets never reach a log line, whichever logger or handler writes it.

Two kinds of secret are masked as ``***`` where each log record is created (before
any handler or formatter sees it, tracebacks included):

- values the tap knows are secret (``api_token``, ``password``, tokens issued by a
  login), registered with ``hide``;
- credentials that travel inside URLs the API hands out as data, such as the
  ``token=`` in a call's ``recording_url``: the URL goes to the target whole, but a
  log line or an error shows it with the query value masked.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import traceback
import typing as t

#: Shorter values are not masked: they would mask common words, and no real
#: token or password is this short.
SHORTEST = 6
#: URL query parameters whose value is a credential (``?token=...&expires=...``).
_QUERY_CREDENTIAL = re.compile(
    r"(?i)([?&;](?:token|access_token|api_token|auth|key|signature|sig|password)=)"
    r"[^&#\s'\"<>\\]+"
)
#: Replaced as a whole, never changed in place: ``mask`` reads it without a lock
#: while a thread that logs in adds a new token.
_secrets: tuple[str, ...] = ()
_lock = threading.Lock()
_installed = False


def hide(secret: str) -> None:
    """Mask ``secret`` as ``***`` in every log record from now on.

    Its escaped spellings are masked too: a repr (in a traceback) and JSON (a
    server that echoes the login body) write a quote, a backslash, a line break or
    a non-ASCII letter otherwise.
    """
    global _secrets  # noqa: PLW0603 (one set of secrets per process)
    install()
    if len(secret) < SHORTEST:
        return
    spellings = (
        secret,
        repr(secret)[1:-1],
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
    )
    with _lock:
        fresh = [s for s in dict.fromkeys(spellings) if s not in _secrets]
        # Longest first, so that a secret containing another is masked whole.
        _secrets = tuple(sorted((*_secrets, *fresh), key=len, reverse=True))


def install() -> None:
    """Mask every log record from now on (once per process; safe to call again)."""
    global _installed  # noqa: PLW0603 (one record factory per process)
    with _lock:
        if not _installed:
            logging.setLogRecordFactory(_masking(logging.getLogRecordFactory()))
            _installed = True


def mask(text: str) -> str:
    """``text`` with every hidden secret and URL credential replaced by ``***``."""
    for secret in _secrets:
        text = text.replace(secret, "***")
    return _QUERY_CREDENTIAL.sub(r"\1***", text)


def clip(text: str, limit: int) -> str:
    """``text`` masked, then cut to ``limit`` characters.

    Never the other way round: a cut through a secret leaves a part that no longer
    matches it.
    """
    return mask(text)[:limit]


def quoted(value: object, limit: int = 40) -> str:
    """``repr(value)`` masked, then cut to ``limit`` characters (``...`` if cut).

    For a value read from the STATE or the API, quoted in a warning.
    """
    text = mask(repr(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _masking(
    make_record: t.Callable[..., logging.LogRecord],
) -> t.Callable[..., logging.LogRecord]:
    def make_masked_record(*args: t.Any, **kwargs: t.Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        message = record.getMessage()
        masked = mask(message)
        if record.exc_info and record.exc_info[1] is not None:
            # Tracebacks are formatted later, from the exception: format it now,
            # into the message (arguments already applied: a "%" in it is text).
            text = "".join(traceback.format_exception(*record.exc_info))
            masked = f"{masked}\n{mask(text).rstrip()}"
            record.exc_info = None
        if masked != message:
            record.msg, record.args = masked, None
        return record

    return make_masked_record
