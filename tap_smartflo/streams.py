"""The Smartflo streams: one small class per endpoint."""

from __future__ import annotations

import typing as t
from datetime import datetime, timedelta

from typing_extensions import override

from tap_smartflo.client import (
    IncrementalSmartfloStream,
    SmartfloStream,
    UpdatedAfterStream,
)
from tap_smartflo.normalize import (
    IST,
    UTC,
    date_time_text,
    format_utc,
    not_available_as_null,
    to_id_text,
    to_int,
    to_number,
)
from tap_smartflo.pagination import (
    CountedPageNumberPaginator,
    KeysetPaginator,
    time_windows,
)

if t.TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from singer_sdk.helpers.types import Context

    from tap_smartflo.normalize import Converter, Source

#: Where call records start when ``start_date`` is empty.
CALL_HISTORY_START = datetime(2015, 1, 1, tzinfo=UTC)
#: How long before the run's start the newest call-records window ends: a margin for
#: the server's clock and for calls being written, so no window reaches the future.
CALL_WINDOW_END_MARGIN = timedelta(minutes=1)
#: Format of ``from_date`` and ``to_date``: naive wall-clock time in IST.
CALL_QUERY_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


class ContactsStream(UpdatedAfterStream):
    """Contacts of every contact group: ``GET /v1/contacts``."""

    name = "contacts"
    path = "/v1/contacts"
    primary_keys = ("id",)


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
        return KeysetPaginator()


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
        return CountedPageNumberPaginator()

    def windows(self, context: Context | None) -> list[tuple[datetime, datetime]]:
        """The closed windows this run reads, oldest first (whole seconds)."""
        start = self.replicate_from(context) or CALL_HISTORY_START
        signpost = t.cast("datetime", self.get_replication_key_signpost(context))
        end = signpost - CALL_WINDOW_END_MARGIN
        length = timedelta(days=int(self.config["call_records_window_days"]))
        return list(time_windows(_whole(start), _whole(end), length))

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
    def request_records(self, context: Context | None) -> t.Iterable[dict]:
        self._seed_bookmark(context)
        for start, end in self.windows(context):
            yield from self._window_records(context, start, end)
            self._advance_bookmark(context, end)

    def _window_records(
        self, context: Context | None, start: datetime, end: datetime
    ) -> Iterator[dict]:
        """Every call that started in ``[start, end)``, once each."""
        window = {
            **(context or {}),
            # A second early, in case the server compares from_date exclusively.
            "from_date": _call_query_time(start - timedelta(seconds=1)),
            "to_date": _call_query_time(end),
        }
        low, high = format_utc(start), format_utc(end)
        seen: set[str] = set()
        for record in super().request_records(window):
            started_at = record["started_at"]
            if started_at is not None and not low <= started_at < high:
                # The neighbouring window's: the server's edges are inclusive.
                if not _asked_for(started_at, start, end):
                    self._warn_filter_ignored(record, window)
                continue
            if record["id"] in seen:
                # A call written while the pages were read pushed this one along.
                continue
            seen.add(record["id"])
            yield record

    def _warn_filter_ignored(
        self, record: dict[str, t.Any], window: t.Mapping[str, str]
    ) -> None:
        if getattr(self, "_warned_filter", False):
            return
        self._warned_filter = True
        self.logger.warning(
            "%s returned a call that started at %s (id %s) for from_date=%s, "
            "to_date=%s (IST): it does not filter by these dates as documented. Each "
            "call is kept only in its own window, but reading takes longer, and if "
            "the server reads the dates in another time zone, calls near window "
            "edges can be missed.",
            self.path,
            record["started_at"],
            record["id"],
            window["from_date"],
            window["to_date"],
        )


def _whole(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


def _call_query_time(moment: datetime) -> str:
    return moment.astimezone(IST).strftime(CALL_QUERY_TIME_FORMAT)


def _asked_for(started_at: str, start: datetime, end: datetime) -> bool:
    """Whether a UTC RFC 3339 time lies in the range sent as from_date/to_date."""
    moment = datetime.fromisoformat(started_at)
    return start - timedelta(seconds=1) <= moment <= end
