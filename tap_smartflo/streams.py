"""The Smartflo streams: one small class per endpoint.

Each class says what it reads (``path``, ``records_key``), how the endpoint pages
(``paging``: pages.py) and how it replicates (its base class: ``FullTableStream``,
``UpdatedAfterStream`` or ``WindowedStream``).
"""

from __future__ import annotations

import typing as t
from datetime import timedelta
from functools import cached_property

from typing_extensions import override

from tap_smartflo.callbacks import CallbackWindowsStream
from tap_smartflo.client import SCHEMAS
from tap_smartflo.custom_fields import CustomFieldColumns, is_custom_column
from tap_smartflo.details import DetailsStream
from tap_smartflo.incremental import UpdatedAfterStream
from tap_smartflo.normalize import (
    date_time_text,
    decoded,
    not_available_as_null,
    to_id_text,
    to_int,
    to_number,
)
from tap_smartflo.pages import Keyset, PageNumbers, Unpaged
from tap_smartflo.recordings import RecordingsStream
from tap_smartflo.versions import FullTableStream
from tap_smartflo.windowed import WindowedStream

if t.TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from singer_sdk.helpers.types import Context, Record

    from tap_smartflo.normalize import Converter, Source


class ContactsStream(UpdatedAfterStream):
    """Contacts of every contact group: ``GET /v1/contacts``.

    Numbered pages; incremental on ``updated_at`` (the ``updated_after`` filter).

    Each custom field label of the account's groups is also a column of its own,
    filled from ``custom_fields`` (see ``custom_fields`` and ``discovery``).
    """

    name = "contacts"
    path = "/v1/contacts"
    primary_keys = ("id",)

    @cached_property
    @override
    def schema(self) -> dict[str, t.Any]:
        schema = SCHEMAS.get_schema(self.name, key_properties=self.primary_keys)
        columns = self.services.contact_columns.columns
        # A new dict: the schema directory caches the file's.
        return {**schema, "properties": {**schema["properties"], **columns}}

    @cached_property
    @override
    def custom_columns(self) -> CustomFieldColumns | None:
        if not self.config.get("custom_fields_as_columns", True):
            return None
        columns = [name for name in self.schema["properties"] if is_custom_column(name)]
        selected = [name for name in columns if self.mask[("properties", name)]]
        return CustomFieldColumns(columns, filled=selected)

    @override
    def version_content(self, record: Mapping[str, t.Any]) -> Mapping[str, t.Any]:
        # The custom-field columns repeat custom_fields: a column discovered since
        # the last run is no change to the contact. A record holds exactly the
        # columns the normalizer fills (this runs on every record).
        if self.custom_columns is None or not self.custom_columns.filled:
            return record
        content = dict(record)
        for column in self.custom_columns.filled:
            del content[column]
        return content

    @override
    def request_records(self, context: Context | None) -> Iterable[dict[str, t.Any]]:
        yield from super().request_records(context)
        if self.custom_columns is not None and (
            unknown := self.custom_columns.newly_unknown()
        ):
            self.logger.info(
                "Custom fields with no column in the catalog (kept in custom_fields; "
                "the next discovery adds their columns): %s",
                ", ".join(unknown),
            )


class ContactGroupsStream(UpdatedAfterStream):
    """Contact groups: ``GET /v1/contact/groups``.

    Numbered pages of at most 100 (documented); incremental on ``updated_at`` (the
    ``updated_after`` filter).
    """

    name = "contact_groups"
    path = "/v1/contact/groups"
    primary_keys = ("id",)
    paging = PageNumbers(max_size=100)


class UsersStream(FullTableStream):
    """Users (and their agents): ``GET /v1/users``.

    Keyset pages (``last_seen_id``) under ``data``; full table.
    """

    name = "users"
    path = "/v1/users"
    primary_keys = ("id",)
    records_key = "data"
    paging = Keyset(param="last_seen_id")

    @override
    def get_child_context(self, record: Record, context: Context | None) -> Context:
        return {"user_id": record["id"]}


class UserDetailsStream(DetailsStream):
    """Each user's details: ``GET /v1/user/{user_id}``.

    A child of users: one object per user under ``data``; full table. An id the API
    answers with an error is skipped with a warning (details.py).
    """

    name = "user_details"
    path = "/v1/user/{user_id}"
    primary_keys = ("id",)
    parent_stream_type = UsersStream
    id_key = "user_id"


class DepartmentsStream(FullTableStream):
    """Departments (queues of agents): ``GET /v1/departments``.

    A bare array, all at once; full table.
    Ids and counters arrive as strings of digits; they leave as integers.
    """

    name = "departments"
    path = "/v1/departments"
    primary_keys = ("id",)
    records_key = None
    paging = Unpaged()


class IvrsStream(FullTableStream):
    """IVRs and their menus: ``GET /v1/ivrs``.

    All at once under ``ivrs``; full table.
    """

    name = "ivrs"
    path = "/v1/ivrs"
    primary_keys = ("id",)
    records_key = "ivrs"
    paging = Unpaged()


class MyNumbersStream(FullTableStream):
    """The account's numbers (DIDs): ``GET /v1/my_number``.

    A bare array, all at once; full table.
    """

    name = "my_numbers"
    path = "/v1/my_number"
    primary_keys = ("id",)
    records_key = None
    paging = Unpaged()
    converter_overrides: t.ClassVar[Mapping[str, Converter]] = {"id": to_id_text}


class BroadcastListsStream(FullTableStream):
    """Lists of leads for broadcasts: ``GET /v1/broadcast/lists``.

    A bare array, all at once; full table.
    The parent of broadcast_leads: each list gives its leads their context.
    """

    name = "broadcast_lists"
    path = "/v1/broadcast/lists"
    primary_keys = ("id",)
    records_key = None
    paging = Unpaged()

    @override
    def get_child_context(self, record: Record, context: Context | None) -> Context:
        return {"list_id": record["id"]}


class BroadcastLeadsStream(FullTableStream):
    """Each list's leads: ``GET /v1/broadcast/leads/{list_id}``.

    A child of broadcast_lists: a bare array per list, all at once; full table.
    One request per list, every run: the endpoint has no filter on time. Times are
    Mongo dates; ``header`` and ``sensitive_field_map`` arrive as JSON in text.
    """

    name = "broadcast_leads"
    path = "/v1/broadcast/leads/{list_id}"
    primary_keys = ("id",)
    records_key = None
    paging = Unpaged()
    parent_stream_type = BroadcastListsStream
    #: One state for the stream, not one per list.
    state_partitioning_keys: t.ClassVar[list[str]] = []
    converter_overrides: t.ClassVar[Mapping[str, Converter]] = {"id": to_id_text}
    derived_fields: t.ClassVar[Mapping[str, Source]] = {
        "header": decoded("header"),
        "sensitive_field_map": decoded("sensitive_field_map"),
    }


class BroadcastsStream(FullTableStream):
    """Broadcasts (outbound campaigns): ``GET /v2/broadcasts``.

    Numbered pages of at most 100 (documented); full table. Ids are text; times
    arrive in epoch seconds.
    """

    name = "broadcasts"
    path = "/v2/broadcasts"
    primary_keys = ("id",)
    paging = PageNumbers(max_size=100)
    converter_overrides: t.ClassVar[Mapping[str, Converter]] = {"id": to_id_text}


class DialerCampaignsStream(FullTableStream):
    """Dialer campaigns: ``GET /v1/dialer/campaign``.

    All at once under ``data``; full table.
    """

    name = "dialer_campaigns"
    path = "/v1/dialer/campaign"
    primary_keys = ("id",)
    records_key = "data"
    paging = Unpaged()
    converter_overrides: t.ClassVar[Mapping[str, Converter]] = {"id": to_id_text}


class DndListsStream(UpdatedAfterStream):
    """DND lists (numbers not to call): ``GET /v1/broadcast/dnd/lists``.

    Keyset pages of at most 100 (documented) after ``cursor``, the last id read, in
    ascending order; incremental on ``updated_at`` (the ``updated_after`` filter).
    """

    name = "dnd_lists"
    path = "/v1/broadcast/dnd/lists"
    primary_keys = ("id",)
    records_key = "data"
    paging = Keyset(max_size=100, param="cursor")

    @override
    def get_url_params(
        self, context: Context | None, next_page_token: t.Any
    ) -> dict[str, t.Any]:
        return {**super().get_url_params(context, next_page_token), "sort_dir": "asc"}


class DndLeadsStream(FullTableStream):
    """The numbers on DND lists: ``GET /v1/broadcast/dnd/leads``.

    Keyset pages of at most 100 (documented) after ``last_seen_id`` (24-hex ids);
    full table: only ``created_at`` exists, so a number taken off a list is gone.
    """

    name = "dnd_leads"
    path = "/v1/broadcast/dnd/leads"
    primary_keys = ("id",)
    records_key = "data"
    paging = Keyset(max_size=100, param="last_seen_id")
    converter_overrides: t.ClassVar[Mapping[str, Converter]] = {"id": to_id_text}


class ScheduledCallbacksStream(CallbackWindowsStream):
    """Scheduled callbacks: ``GET /v1/dialer/schedule_call``.

    All at once per ``from_date``/``to_date`` window; incremental on
    ``schedule_date_time``: history from ``start_date``, then each run re-reads
    ``scheduled_callbacks_lookback_days`` and ``scheduled_callbacks_days_ahead``,
    emitting only the callbacks that changed (callbacks.py).
    """

    name = "scheduled_callbacks"
    path = "/v1/dialer/schedule_call"
    primary_keys = ("id",)


class CallRecordsStream(WindowedStream):
    """Call detail records: ``GET /v1/call/records``.

    Numbered pages with a ``count``; incremental on ``started_at``, read in closed
    windows (windowed.py) of at most ``call_records_window_days``; every run re-reads
    ``call_records_lookback_hours`` before the bookmark: a call is written when it
    ends (long after it started, for a long call), and ``recording_url`` later still.
    """

    name = "call_records"
    path = "/v1/call/records"
    primary_keys = ("id",)
    replication_key = "started_at"
    converter_overrides: t.ClassVar[Mapping[str, Converter]] = {
        "id": to_id_text,
        "call_id": to_id_text,
        "call_duration": not_available_as_null(to_int),
        "answered_seconds": not_available_as_null(to_int),
        "minutes_consumed": not_available_as_null(to_int),
        "charges": not_available_as_null(to_number),
        "agent_ring_time": not_available_as_null(to_number),
    }
    derived_fields: t.ClassVar[Mapping[str, Source]] = {
        "started_at": lambda raw: date_time_text(raw.get("date"), raw.get("time")),
    }

    @property
    @override
    def lookback(self) -> timedelta:
        return timedelta(hours=float(self.config["call_records_lookback_hours"]))

    @property
    @override
    def window_days(self) -> int:
        return int(self.config["call_records_window_days"])

    @override
    def generate_child_contexts(
        self, record: Record, context: Context | None
    ) -> Iterable[Context | None]:
        # Public SDK API. Only calls with a recording, and never the link itself
        # in the context: the SDK logs contexts (see recordings.py).
        for child in self.child_streams:
            if isinstance(child, CallRecordingsStream) and child.selected:
                yield from child.contexts_for(record)

    @override
    def read_whole(self) -> None:
        # Recordings an earlier run could not archive, of calls this run did not
        # read again (older than its lookback).
        for child in self.child_streams:
            if isinstance(child, CallRecordingsStream) and child.selected:
                child.archive_left_over()


class CallRecordingsStream(RecordingsStream):
    """Each answered call's audio, archived at ``recordings_archive_url``.

    A child of call_records, off unless selected: one record per recording put in
    the archive (see recordings.py and docs/recordings.md).
    """

    name = "call_recordings"
    parent_stream_type = CallRecordsStream
