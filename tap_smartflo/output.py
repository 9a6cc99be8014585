"""Where the Singer messages the tap writes itself go: STATE, ACTIVATE_VERSION."""

from __future__ import annotations

import typing as t

if t.TYPE_CHECKING:
    from singer_sdk.helpers import types
    from singer_sdk.singerlib import Message


class StateWriter(t.Protocol):
    """The SDK's STATE writer (``Tap.state_writer``): it skips an unchanged STATE."""

    def write_state(self, state: types.TapState) -> None: ...  # noqa: D102


class MessageWriter(t.Protocol):
    """The SDK's message writer (``Tap.message_writer``)."""

    def write_message(self, message: Message) -> None: ...  # noqa: D102


class Output:
    """The tap's message writer and its STATE, for streams to write to now."""

    def __init__(
        self,
        writer: MessageWriter,
        state_writer: StateWriter,
        state: types.TapState,
    ) -> None:
        """Write through the tap's ``writer``; ``state`` is the tap's own dict."""
        self.writer = writer
        self.state_writer = state_writer
        self.state = state

    def write_state(self) -> None:
        """Emit a STATE message with the tap's state now (when it has changed)."""
        self.state_writer.write_state(self.state)

    def write(self, message: Message) -> None:
        """Emit any Singer message now."""
        self.writer.write_message(message)
