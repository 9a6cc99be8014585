"""The Smartflo streams: one small class per endpoint."""

from __future__ import annotations

import itertools
import typing as t
from datetime import datetime, timedelta
from functools import cached_property

from typing_extensions import override

from tap_smartflo.call_windows import CALL_WINDOW_END_MARGIN, CallLedger, call_windows
from tap_smartflo.callbacks import CallbackWindowsStream
from tap_smartflo.client import SCHEMAS, SmartfloStream, UnpagedStream
from tap_smartflo.custom_fields import CustomFieldColumns, is_custom_column
from tap_smartflo.details import DetailsStream
from tap_smartflo.incremental import IncrementalSmartfloStream, UpdatedAfterStream
from tap_smartflo.normalize import (
    IST,
    UTC,
    date_time_text,
    decoded,
    not_available_as_null,
    parse_time,
    query_time,
    to_id_text,
    to_int,
    to_number,
)
from tap_smartflo.pagination import CountedPageNumberPaginator, KeysetPaginator

if t.TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping

    from singer_sdk.helpers.types import Context, Record

    from tap_smartflo.normalize import Converter, Source


class ContactsStream(UpdatedAfterStream):
    """Contacts of every contact group: ``GET /v1/contacts``.

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
        columns = self.services.contact_columns()
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
    """Contact groups: ``GET /v1/contact/groups`` (``limit`` is documented 1 to 100)."""

    name = "contact_groups"
    path = "/v1/contact/groups"
    primary_keys = ("id",)
    max_page_size = 100


class UsersStream(SmartfloStream):
    """Users (and their agents): ``GET /v1/users``, keyset pages, full table."""

    name = "users"
    path = "/v1/users"
    primary_keys = ("id",)
    records_key = "data"
    page_param = "last_seen_id"

    @override
    def new_paginator(self) -> KeysetPaginator:
        return KeysetPaginator(self.sizing)

    @override
    def get_child_context(self, record: Record, context: Context | None) -> Context:
        return {"user_id": record["id"]}


class UserDetailsStream(DetailsStream):
    """Each user's details: ``GET /v1/user/{user_id}``, one request per user.

    A child of users; an id the API answers with an error is skipped (see details).
    """

    name = "user_details"
    path = "/v1/user/{user_id}"
    primary_keys = ("id",)
    parent_stream_type = UsersStream
    id_key = "user_id"


class DndListsStream(UpdatedAfterStream):
    """DND lists: ``GET /v1/broadcast/dnd/lists``, ``cursor`` keyset pages of 100.

    The cursor is the last id read, in ascending order (``sort_dir=asc``).
    """

    name = "dnd_lists"
    path = "/v1/broadcast/dnd/lists"
    primary_keys = ("id",)
    records_key = "data"
    page_param = "cursor"
    max_page_size = 100

    @override
    def new_paginator(self) -> KeysetPaginator:
        return KeysetPaginator(self.sizing)

    @override
    def get_url_params(
        self, context: Context | None, next_page_token: t.Any
    ) -> dict[str, t.Any]:
        return {**super().get_url_params(context, next_page_token), "sort_dir": "asc"}


class DndLeadsStream(SmartfloStream):
    """Numbers on DND lists: ``GET /v1/broadcast/dnd/leads``, keyset pages, full table.

    Only ``created_at`` exists, so every run reads them all (``last_seen_id`` over
    24-hex ids, 100 a page), and a number taken off a list is gone (ACTIVATE_VERSION).
    """

    name = "dnd_leads"
    path = "/v1/broadcast/dnd/leads"
    primary_keys = ("id",)
    records_key = "data"
    page_param = "last_seen_id"
    max_page_size = 100
    converter_overrides: t.ClassVar[Mapping[str, Converter]] = {"id": to_id_text}

    @override
    def new_paginator(self) -> KeysetPaginator:
        return KeysetPaginator(self.sizing)


class DepartmentsStream(UnpagedStream):
    """Departments (queues of agents): ``GET /v1/departments``, a bare array.

    Ids and counters arrive as strings of digits; they leave as integers.
    """

    name = "departments"
    path = "/v1/departments"
    primary_keys = ("id",)
    records_key = None


class IvrsStream(UnpagedStream):
    """IVRs and their menus: ``GET /v1/ivrs``, all of them under ``ivrs``."""

    name = "ivrs"
    path = "/v1/ivrs"
    primary_keys = ("id",)
    records_key = "ivrs"


class MyNumbersStream(UnpagedStream):
    """The account's numbers (DIDs): ``GET /v1/my_number``, a bare array."""

    name = "my_numbers"
    path = "/v1/my_number"
    primary_keys = ("id",)
    records_key = None
    converter_overrides: t.ClassVar[Mapping[str, Converter]] = {"id": to_id_text}


class BroadcastListsStream(UnpagedStream):
    """Lists of leads for broadcasts: ``GET /v1/broadcast/lists``, a bare array.

    The parent of broadcast_leads: each list gives its leads their context.
    """

    name = "broadcast_lists"
    path = "/v1/broadcast/lists"
    primary_keys = ("id",)
    records_key = None

    @override
    def get_child_context(self, record: Record, context: Context | None) -> Context:
        return {"list_id": record["id"]}


class BroadcastLeadsStream(UnpagedStream):
    """Each list's leads: ``GET /v1/broadcast/leads/{list_id}``, a bare array.

    One request per list, every run: the endpoint has no filter on time. Times are
    Mongo dates; ``header`` and ``sensitive_field_map`` arrive as JSON in text.
    """

    name = "broadcast_leads"
    path = "/v1/broadcast/leads/{list_id}"
    primary_keys = ("id",)
    records_key = None
    parent_stream_type = BroadcastListsStream
    #: One state for the stream, not one per list.
    state_partitioning_keys: t.ClassVar[list[str]] = []
    converter_overrides: t.ClassVar[Mapping[str, Converter]] = {"id": to_id_text}
    derived_fields: t.ClassVar[Mapping[str, Source]] = {
        "header": decoded("header"),
        "sensitive_field_map": decoded("sensitive_field_map"),
    }


class BroadcastsStream(SmartfloStream):
    """Broadcasts (outbound campaigns): ``GET /v2/broadcasts``, pages of at most 100.

    Ids are text; times arrive in epoch seconds.
    """

    name = "broadcasts"
    path = "/v2/broadcasts"
    primary_keys = ("id",)
    max_page_size = 100
    converter_overrides: t.ClassVar[Mapping[str, Converter]] = {"id": to_id_text}


class DialerCampaignsStream(UnpagedStream):
    """Dialer campaigns: ``GET /v1/dialer/campaign``, all of them under ``data``."""

    name = "dialer_campaigns"
    path = "/v1/dialer/campaign"
    primary_keys = ("id",)
    records_key = "data"
    converter_overrides: t.ClassVar[Mapping[str, Converter]] = {"id": to_id_text}


class CallRecordsStream(IncrementalSmartfloStream):
    """Call detail records: ``GET /v1/call/records``, read in closed time windows.

    Records have no ``updated_at`` and come newest first, so pages shift while calls
    arrive. The stream asks for windows of at most ``call_records_window_days`` that
    all end before the run started, oldest first; it reads each to the end (``count``
    says when), keeps only the calls that start inside it, once each, and moves the
    bookmark to the window's end only then. Every run re-reads
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

    @override
    def new_paginator(self) -> CountedPageNumberPaginator:
        self._paginator = CountedPageNumberPaginator(self.sizing)
        return self._paginator

    def windows(self, context: Context | None) -> list[tuple[datetime, datetime]]:
        """The closed windows this run reads, oldest first (whole seconds)."""
        return call_windows(
            self.replicate_from(context),
            t.cast("datetime", self.get_replication_key_signpost(context)),
            int(self.config["call_records_window_days"]),
        )

    @override
    def access_check_params(self) -> dict[str, t.Any]:
        # The last closed minute: a window the endpoint accepts, with few calls.
        end = datetime.now(UTC).replace(microsecond=0) - CALL_WINDOW_END_MARGIN
        return {
            **super().access_check_params(),
            "from_date": query_time(end - timedelta(minutes=1), IST),
            "to_date": query_time(end, IST),
        }

    @override
    def get_url_params(
        self, context: Context | None, next_page_token: t.Any
    ) -> dict[str, t.Any]:
        params = super().get_url_params(context, next_page_token)
        window = t.cast("t.Mapping[str, str]", context)
        params["from_date"] = window["from_date"]
        params["to_date"] = window["to_date"]
        return params

    @override
    def request_records(self, context: Context | None) -> Iterable[dict[str, t.Any]]:
        self.seed_bookmark(context)
        ledger = CallLedger()
        windows = self.windows(context)
        if not windows:
            return
        first, last = windows[0][0], windows[-1][1]
        span = f"{first:%Y-%m-%d} to {last:%Y-%m-%d}"
        for start, end in windows:
            done = (start - first) / (last - first)
            self.services.report.reached(self.name, done, span)
            yield from self._window_records(context, start, end, ledger)
            self.advance_bookmark(context, end)
            ledger.window_done(end)
        self.services.report.reached(self.name, 1.0, span)

    def _window_records(
        self,
        context: Context | None,
        start: datetime,
        end: datetime,
        ledger: CallLedger,
        *,
        narrowest: bool = False,
    ) -> Iterator[dict[str, t.Any]]:
        """Every call the server returns for ``[start, end)``, once in the run.

        A window that yielded fewer distinct calls than the ``count`` the server
        gave is read again (twice at most, while that finds more): calls written
        while it was read shift its pages. Calls that started in the same second
        can also come in another order on every request (a sort that is not unique
        under LIMIT/OFFSET): then only the seconds whose calls straddle a page
        boundary can lose some, so each such second is read on its own, where one
        page holds all its calls.
        """
        window = {
            **(context or {}),
            # A second early, in case the server compares from_date exclusively.
            "from_date": query_time(start - timedelta(seconds=1), IST),
            "to_date": query_time(end, IST),
        }
        returned: set[str] = set()
        straddling: set[str] = set()
        count: int | None = None
        for reading in range(3):
            before = len(returned)
            order: list[str | None] = []
            for record in super().request_records(window):
                order.append(record["started_at"])
                if not ledger.near(record["started_at"], start, end):
                    self._warn_filter_ignored(record, window)
                    continue
                returned.add(record["id"])
                if ledger.first_time(record["id"], record["started_at"]):
                    yield record
            count = self._paginator.count
            straddling |= _straddling(order, self._paginator.page_sizes)
            if count is None or len(returned) >= count or len(returned) == before:
                break
            self.logger.warning(
                "%s gave count=%d for %s to %s (IST) but %d distinct calls; "
                "reading the window again (%d)",
                self.path,
                count,
                window["from_date"],
                window["to_date"],
                len(returned),
                reading + 1,
            )
        if count is None or len(returned) >= count or narrowest:
            return
        if not straddling:
            self._warn_short(window, count, len(returned))
            return
        self.logger.warning(
            "%s still gave %d distinct calls of %d for %s to %s (IST): reading "
            "the %d seconds whose calls straddle a page boundary one by one",
            self.path,
            len(returned),
            count,
            window["from_date"],
            window["to_date"],
            len(straddling),
        )
        for second in sorted(straddling):
            moment = t.cast("datetime", parse_time(second))
            yield from self._window_records(
                context, moment, moment + timedelta(seconds=1), ledger, narrowest=True
            )

    def _warn_short(self, window: t.Mapping[str, str], count: int, got: int) -> None:
        self.logger.warning(
            "%s counted %d calls for %s to %s (IST), but %d were returned, read "
            "again and again: the bookmark moves past this window, as nothing more "
            "can be read. If calls are missing from it, report it to Smartflo",
            self.path,
            count,
            window["from_date"],
            window["to_date"],
            got,
        )

    def _warn_filter_ignored(
        self, record: dict[str, t.Any], window: t.Mapping[str, str]
    ) -> None:
        if getattr(self, "_warned_filter", False):
            return
        self._warned_filter = True
        self.logger.warning(
            "%s returned a call that started at %s (id %s) for from_date=%s, "
            "to_date=%s (IST): it does not filter by these dates as documented. "
            "Each call is emitted once, from its own window (or one next to it), "
            "but reading takes more requests.",
            self.path,
            record["started_at"],
            record["id"],
            window["from_date"],
            window["to_date"],
        )


class ScheduledCallbacksStream(CallbackWindowsStream):
    """Scheduled callbacks: ``GET /v1/dialer/schedule_call`` in date windows.

    History from ``start_date``, and ``scheduled_callbacks_days_ahead`` ahead; each
    run re-reads the lookback and the days ahead, emitting only what changed (see
    callbacks).
    """

    name = "scheduled_callbacks"
    path = "/v1/dialer/schedule_call"
    primary_keys = ("id",)


def _straddling(order: list[str | None], page_sizes: list[int]) -> set[str]:
    """The start times shared by the last call of a page and the first of the next.

    Boundaries lie where the pages really ended (a server may cap its pages below
    the limit it claims).
    """
    boundaries = itertools.accumulate(page_sizes[:-1])
    edges = (order[k - 1 : k + 1] for k in boundaries if 0 < k < len(order))
    return {a for a, b in edges if a is not None and a == b}
