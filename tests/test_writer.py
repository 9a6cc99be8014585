"""The tap's Singer output: each message as the SDK would write it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal

from singer_sdk.contrib.msgspec import MsgSpecWriter
from singer_sdk.singerlib import (
    ActivateVersionMessage,
    Message,
    RecordMessage,
    SchemaMessage,
    SingerMessageType,
    StateMessage,
)

from tap_smartflo.writer import SmartfloWriter


@dataclass(slots=True)
class Encoding:
    format: str
    compression: str | None = None


@dataclass(slots=True)
class BatchLike(Message):
    """A message with a dataclass inside, as the SDK's BATCH has."""

    stream: str
    encoding: Encoding

    def __post_init__(self) -> None:
        self.type = SingerMessageType.BATCH


def test_each_message_is_written_byte_for_byte_as_the_sdk_writes_it():
    # The tap's writer encodes RECORD, SCHEMA, STATE and ACTIVATE_VERSION without
    # the SDK's deep copy (dataclasses.asdict): the lines must not differ by a byte.
    when = datetime(2024, 5, 8, 12, 0, 1, tzinfo=timezone.utc)
    record = {
        "id": 7, "name": None, "amount": Decimal("12.50"), "tags": ["a", None],
        "custom_fields": [{"name": "Tenure", "value": None}], "seen": when,
    }  # fmt: skip
    schema = {"type": "object", "properties": {"id": {"type": ["integer"]}}}
    state = {"bookmarks": {"contacts": {"replication_key_value": None}}}
    messages = [
        RecordMessage(stream="contacts", record=record),
        RecordMessage(stream="contacts", record=record, version=3, time_extracted=when),
        SchemaMessage(stream="contacts", schema=schema, key_properties=["id"]),
        SchemaMessage(stream="contacts", schema=schema, bookmark_properties=["id"]),
        StateMessage(value=state),
        ActivateVersionMessage(stream="contacts", version=3),
        BatchLike(stream="contacts", encoding=Encoding(format="jsonl")),
    ]
    for message in messages:
        ours = bytes(SmartfloWriter().serialize_message(message))
        sdk = bytes(MsgSpecWriter().serialize_message(message))
        assert ours == sdk, message
    assert record["name"] is None  # nothing written changed the record
