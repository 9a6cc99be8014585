"""Secrets never reach a log line, whichever logger or handler writes it.

A run makes one ``Redactor``, installs it before its first log line and removes it
at its end. While installed, two kinds of secret are masked as ``***`` where each
log record is created (before any handler or formatter sees it, tracebacks
included):

- values the run knows are secret (``api_token``, ``password``, tokens issued by a
  login), registered with ``Redactor.hide``;
- credentials that travel inside URLs the API hands out as data, such as the
  ``token=`` in a call's ``recording_url``: the URL goes to the target whole, but a
  log line or an error shows it with the query value masked.

``mask`` (and ``clip``, ``quoted``) apply every installed redactor, for text that
leaves another way (an exception's message, a warning built from input).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import traceback
import typing as t

from typing_extensions import Self

#: Shorter values are not masked: they would mask common words, and no real
#: token or password is this short.
SHORTEST = 6
#: URL query parameters whose value is a credential (``?token=...&expires=...``).
_QUERY_CREDENTIAL = re.compile(
    r"(?i)([?&;](?:token|access_token|api_token|auth|key|signature|sig|password)=)"
    r"[^&#\s'\"<>\\]+"
)


class Redactor:
    """The secrets of one run, masked in every log record while it is installed."""

    def __init__(self) -> None:
        """A redactor that knows no secret yet, not installed."""
        #: Replaced as a whole, never changed in place: ``mask`` reads it without a
        #: lock while a thread that logs in adds a new token.
        self.secrets: tuple[str, ...] = ()
        self._lock = threading.Lock()
        self._previous: t.Callable[..., logging.LogRecord] | None = None

    def hide(self, secret: str) -> None:
        """Mask ``secret`` as ``***`` from now on.

        Its escaped spellings are masked too: a repr (in a traceback) and JSON (a
        server that echoes the login body) write a quote, a backslash, a line break
        or a non-ASCII letter otherwise.
        """
        if len(secret) < SHORTEST:
            return
        spellings = (
            secret,
            repr(secret)[1:-1],
            json.dumps(secret)[1:-1],
            json.dumps(secret, ensure_ascii=False)[1:-1],
        )
        with self._lock:
            fresh = [s for s in dict.fromkeys(spellings) if s not in self.secrets]
            # Longest first, so that a secret containing another is masked whole.
            self.secrets = tuple(sorted((*self.secrets, *fresh), key=len, reverse=True))

    def mask(self, text: str) -> str:
        """``text`` with this redactor's secrets and URL credentials as ``***``."""
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return _QUERY_CREDENTIAL.sub(r"\1***", text)

    @property
    def installed(self) -> bool:
        """Whether log records are masked by this redactor now."""
        return self._previous is not None

    def install(self) -> Self:
        """Mask every log record from now on (again: no change)."""
        global _installed  # noqa: PLW0603 (what ``mask`` applies, replaced whole)
        with self._lock:
            if self._previous is None:
                self._previous = logging.getLogRecordFactory()
                logging.setLogRecordFactory(self._make_record)
                _installed = (*_installed, self)
        return self

    def remove(self) -> None:
        """Stop masking: log records are made as before ``install``."""
        global _installed  # noqa: PLW0603
        with self._lock:
            previous, self._previous = self._previous, None
            if previous is None:
                return
            _installed = tuple(r for r in _installed if r is not self)
            if logging.getLogRecordFactory() == self._make_record:
                logging.setLogRecordFactory(previous)
            else:  # another factory wraps this one: it passes records through
                self._passed_to = previous

    def __enter__(self) -> Self:
        """Installed for the ``with`` block."""
        return self.install()

    def __exit__(self, *exc: object) -> None:
        """Removed after the ``with`` block."""
        self.remove()

    def _make_record(self, *args: t.Any, **kwargs: t.Any) -> logging.LogRecord:
        make = self._previous or self._passed_to
        record = make(*args, **kwargs)
        if self._previous is None:
            return record  # removed while wrapped by another factory
        message = record.getMessage()
        masked = self.mask(message)
        if record.exc_info and record.exc_info[1] is not None:
            # Tracebacks are formatted later, from the exception: format it now,
            # into the message (arguments already applied: a "%" in it is text).
            text = "".join(traceback.format_exception(*record.exc_info))
            masked = f"{masked}\n{self.mask(text).rstrip()}"
            record.exc_info = None
        if masked != message:
            record.msg, record.args = masked, None
        return record

    _passed_to: t.Callable[..., logging.LogRecord] = logging.LogRecord


#: The redactors installed now, oldest first.
_installed: tuple[Redactor, ...] = ()


def mask(text: str) -> str:
    """``text`` with every installed redactor's secrets and URL credentials masked."""
    for redactor in _installed:
        for secret in redactor.secrets:
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
