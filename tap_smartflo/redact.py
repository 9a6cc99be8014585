"""Secrets never reach a log line, whichever logger or handler writes it."""

from __future__ import annotations

import logging
import threading
import typing as t

_secrets: set[str] = set()
_lock = threading.Lock()
_installed = False


def hide(secret: str) -> None:
    """Mask ``secret`` as ``***`` in every log record from now on."""
    global _installed  # noqa: PLW0603 (one record factory per process)
    if not secret:
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
        return record

    return make_masked_record
