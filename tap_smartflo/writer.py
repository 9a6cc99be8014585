"""Singer output: the SDK's msgspec writer, without a copy of each message.

It flushes per batch instead of per record.
"""

from __future__ import annotations

import dataclasses
import sys
import typing as t

from singer_sdk.contrib.msgspec import MsgSpecWriter, serialize_jsonl
from singer_sdk.singerlib import (
    ActivateVersionMessage,
    RecordMessage,
    SchemaMessage,
    StateMessage,
)
from typing_extensions import override

if t.TYPE_CHECKING:
    from singer_sdk.singerlib import Message

#: The messages whose fields are plain values (no dataclass inside), by their
#: fields' names.
_PLAIN_FIELDS: dict[type[Message], tuple[str, ...]] = {
    kind: tuple(f.name for f in dataclasses.fields(kind))
    for kind in (RecordMessage, SchemaMessage, StateMessage, ActivateVersionMessage)
}


class SmartfloWriter(MsgSpecWriter):
    """Writes RECORDs through stdout's buffer and flushes at every other message.

    A flush per record is a system call per record. Records still reach the target
    before the STATE that covers them, since every STATE is flushed (and so is
    everything at exit), so a target never saves state for records it has not got.
    """

    @override
    def serialize_message(self, message: Message) -> bytearray:
        """The message as a line of JSON, as the SDK writes it.

        The SDK first makes a dict of it with ``dataclasses.asdict``, which copies
        every record, schema and state deeply, only for the copy to be encoded and
        dropped. The fields of these messages are plain values: they are encoded
        as they are, leaving out the empty ones as the SDK does. Any other message
        (BATCH, with a dataclass inside) goes the SDK's way.
        """
        names = _PLAIN_FIELDS.get(type(message))
        if names is None:
            return super().serialize_message(message)
        fields = ((name, getattr(message, name)) for name in names)
        return serialize_jsonl(
            {name: value for name, value in fields if value is not None}
        )

    @override
    def write_message(self, message: Message) -> None:
        sys.stdout.buffer.write(self.format_message(message))
        if not isinstance(message, RecordMessage):
            sys.stdout.flush()
