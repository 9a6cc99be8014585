"""Secrets never reach a log line, whichever logger or handler writes it."""

from __future__ import annotations

import logging
import threading
import traceback
import typing as t

#: Shorter values are not masked: they would mask common words, and no real
#: token or password is this short.
SHORTEST = 6
_secrets: set[str] = set()
_lock = threading.Lock()
_installed = False


def hide(secret: str) -> None:
    """Mask ``secret`` as ``***`` in every log record from now on."""
    global _installed  # noqa: PLW0603 (one record factory per process)
    if len(secret) < SHORTEST:
        return
    with _lock:
        _secrets.add(secret)
        if not _installed:
            logging.setLogRecordFactory(_masking(logging.getLogRecordFactory()))
            _installed = True


def mask(text: str) -> str:
    """``text`` with every hidden secret replaced by ``***``."""
    for secret in _secrets:
        text = text.replace(secret, "***")
    return text


def _masking(
    make_record: t.Callable[..., logging.LogRecord],
) -> t.Callable[..., logging.LogRecord]:
    def make_masked_record(*args: t.Any, **kwargs: t.Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        message = record.getMessage()
        masked = mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and record.exc_info[1] is not None:
            # Tracebacks are formatted later, from the exception: format it now.
            text = "".join(traceback.format_exception(*record.exc_info))
            record.exc_text = mask(text).rstrip("\n")
            record.exc_info = None
            record.msg = f"{record.msg}\n{record.exc_text}"
            record.exc_text = None
        return record

    return make_masked_record
