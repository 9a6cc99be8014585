"""FullTableStream: every run reads every record, and says which rows are gone.

A row removed in Smartflo is simply missing from the next full read. With
``emit_activate_version_messages``, every record of a full-table stream carries the
run's version, and once the stream has been read whole an ACTIVATE_VERSION message
names that version: the target then removes (or marks removed) the rows of older
versions, i.e. the rows this run did not send. The SDK sends its message *before*
the records, which would empty the target's table until they arrive, and leave it
partial after a run that fails midway; the tap sends it after the last record, and
only for a stream read whole (not refused, not failed, every parent's children
read). Pipelinewise taps send one at the end too (and one at the start of a first
sync, for targets that show a table only once a version is active, which SDK
targets do not).
"""

from __future__ import annotations

import typing as t
from functools import cached_property

from singer_sdk.mapper import RemoveRecordTransform
from singer_sdk.singerlib import ActivateVersionMessage
from typing_extensions import override

from tap_smartflo.client import SmartfloStream


class FullTableStream(SmartfloStream):
    """A stream read whole on every run; ACTIVATE_VERSION after its last record."""

    @cached_property
    def activates_versions(self) -> bool:
        """Whether this run tells the target which of this stream's rows are gone."""
        return (
            # A catalog may force another method; then the tap reads it as told.
            self.replication_method == "FULL_TABLE"
            and bool(self.config.get("emit_activate_version_messages"))
            # The SDK's BATCH files carry no version: activating one would tell
            # the target that every row it holds is gone.
            and not self.writes_batches
        )

    @cached_property
    @override
    def record_version(self) -> int | None:
        return self.services.table_version if self.activates_versions else None

    @override
    def read_whole(self) -> None:
        """Activate this run's version of the stream, and its children's.

        A child (broadcast leads) is read once per parent record, so it is finished
        here, by its parent, after the last one; only if it was read in this run
        (its SCHEMA went out) and every parent record's records were read.
        """
        report = self.services.report
        for stream in [self, *self.child_streams]:
            if (
                isinstance(stream, FullTableStream)
                and stream.selected
                and stream.activates_versions
                and stream.read_in_this_run
                and stream.name not in report.skipped
                and stream.name not in report.unread
            ):
                stream.activate_version()

    def activate_version(self) -> None:
        """Tell the target this run's version of the stream is complete."""
        version = t.cast("int", self.record_version)
        for stream_map in self.stream_maps:
            if not isinstance(stream_map, RemoveRecordTransform):
                self.services.output.write(
                    ActivateVersionMessage(
                        stream=stream_map.stream_alias, version=version
                    )
                )
        self.logger.info(
            "Read '%s' whole: ACTIVATE_VERSION %d sent (the target may now remove the "
            "rows this run did not send)",
            self.name,
            version,
        )
