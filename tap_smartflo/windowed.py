"""WindowedStream: a stream read in closed time windows, each to its end.

The call records endpoint has no ``updated_at`` and answers newest first, so its
pages shift while calls arrive. The stream asks for windows of at most
``window_days`` that all end before the run started, oldest first; it reads each
to the end (``count`` says when), keeps only the records that start inside it,
once each, and moves the bookmark to the window's end only then. Every run
re-reads ``lookback`` before the bookmark.
"""

from __future__ import annotations

import itertools
import typing as t
from datetime import datetime, timedelta

from typing_extensions import override

from tap_smartflo.call_windows import CALL_WINDOW_END_MARGIN, CallLedger, call_windows
from tap_smartflo.incremental import IncrementalSmartfloStream
from tap_smartflo.normalize import IST, UTC, parse_time, query_time
from tap_smartflo.pages import CountedPageNumbers

if t.TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from singer_sdk.helpers.types import Context

    from tap_smartflo.pagination import CountedPageNumberPaginator, PageSize


class WindowedStream(IncrementalSmartfloStream):
    """Records filtered by ``from_date``/``to_date`` (naive IST), read in windows."""

    paging: t.ClassVar[CountedPageNumbers] = CountedPageNumbers()

    @property
    def window_days(self) -> int:
        """The longest window, in days."""
        raise NotImplementedError

    def windows(self, context: Context | None) -> list[tuple[datetime, datetime]]:
        """The closed windows this run reads, oldest first (whole seconds)."""
        return call_windows(
            self.replicate_from(context),
            t.cast("datetime", self.get_replication_key_signpost(context)),
            self.window_days,
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
            paginators = _Paginators(self.paging, self.sizing)
            for record in self.query_records(window, paginators):
                order.append(record["started_at"])
                if not ledger.near(record["started_at"], start, end):
                    self._warn_filter_ignored(record, window)
                    continue
                returned.add(record["id"])
                if ledger.first_time(record["id"], record["started_at"]):
                    yield record
            count = paginators.last.count
            straddling |= _straddling(order, paginators.last.page_sizes)
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


class _Paginators:
    """Makes a query's paginators, and keeps the last one made.

    It says the window's ``count`` and where its pages ended (the first one made,
    unless the page size stepped down).
    """

    def __init__(self, paging: CountedPageNumbers, size: PageSize) -> None:
        self.paging = paging
        self.size = size

    def __call__(self) -> CountedPageNumberPaginator:
        self.last = self.paging.paginator(self.size)
        return self.last


def _straddling(order: list[str | None], page_sizes: list[int]) -> set[str]:
    """The start times shared by the last call of a page and the first of the next.

    Boundaries lie where the pages really ended (a server may cap its pages below
    the limit it claims).
    """
    boundaries = itertools.accumulate(page_sizes[:-1])
    edges = (order[k - 1 : k + 1] for k in boundaries if 0 < k < len(order))
    return {a for a, b in edges if a is not None and a == b}
