"""Singer output: the SDK's msgspec writer, flushed per batch instead of per record."""

from __future__ import annotations

import sys
import typing as t

from singer_sdk.contrib.msgspec import MsgSpecWriter
from singer_sdk.singerlib import RecordMessage
from typing_extensions import override

if t.TYPE_CHECKING:
    from singer_sdk.singerlib import Message


class SmartfloWriter(MsgSpecWriter):
    """Writes RECORDs through stdout's buffer and flushes at every other message.

    A flush per record is a system call per record. Records still reach the target
    before the STATE that covers them, since every STATE is flushed (and so is
    everything at exit), so a target never saves state for records it has not got.
    """

    @override
    def write_message(self, message: Message) -> None:
        sys.stdout.buffer.write(self.format_message(message))
        if not isinstance(message, RecordMessage):
            sys.stdout.flush()
