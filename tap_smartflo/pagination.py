"""How the tap walks Smartflo's pages, and how it knows it has reached the end.

These paginators look at the parsed body of a page (parsed once, by the stream) rather
than at the raw HTTP response as the SDK's paginators do: the tap fetches page-number
pages ahead of time, so the next page number must be known without a response, and
the end must be judged on each body in page order.
"""

from __future__ import annotations

import typing as t

from typing_extensions import override

from tap_smartflo.errors import PaginationError
from tap_smartflo.normalize import NormalizationError, to_bool, to_int


class PageNumberPaginator:
    """1-based page numbers (``page=1, 2, ...``) with a safe end condition.

    The data ends at an empty page, or at a page shorter than the ``limit`` the
    server says it used. It never ends at a page merely shorter than the limit the
    tap asked for: servers cap ``limit`` silently. A page whose records are the
    previous page's again means the server ignores ``page``: that stops the sync
    with an error rather than looping for ever.
    """

    def __init__(self, start: int = 1) -> None:
        """Start at page ``start``."""
        self.start = start
        self._previous: tuple[object, ...] | None = None

    def next_token(
        self, token: int, body: t.Mapping[str, t.Any], records: t.Sequence[t.Any]
    ) -> int | None:
        """Return the page after ``token``, or None when ``body`` is the last page.

        Raises:
            PaginationError: when a page repeats the previous one.
        """
        if not records:
            return None
        fingerprint = (len(records), _key(records[0]), _key(records[-1]))
        if fingerprint == self._previous:
            msg = (
                f"page {token} returned the same records as page {token - 1}: the "
                "server seems to ignore the 'page' parameter, so the tap stopped "
                "rather than loop"
            )
            raise PaginationError(msg)
        self._previous = fingerprint
        server_limit = _server_limit(body)
        if server_limit is not None and len(records) < server_limit:
            return None
        return token + 1

    def after(self, token: int) -> int | None:
        """Return the page number after ``token``, for fetching ahead.

        None when the paginator already knows the data ends before that page.
        """
        return token + 1


class CountedPageNumberPaginator(PageNumberPaginator):
    """Page numbers for a query whose every page says ``count``, the total matching it.

    The query is done once as many distinct records as the latest ``count`` have been
    read, so a total that is a multiple of the limit costs no extra request for an
    empty page. Short of that, only an empty page ends it: a page shorter than the
    limit the server claims, while ``count`` says more remain, is a server capping
    ``limit`` without saying so, and the next page is read. Records written while
    the pages are read shift them: a record seen on two pages is counted once.
    """

    def __init__(self, start: int = 1) -> None:
        """Start at page ``start``."""
        super().__init__(start)
        self._seen: set[object] = set()
        self._count: int | None = None
        self._limit: int | None = None
        #: How many records each page held, in page order.
        self.page_sizes: list[int] = []

    @override
    def next_token(
        self, token: int, body: t.Mapping[str, t.Any], records: t.Sequence[t.Any]
    ) -> int | None:
        next_page = super().next_token(token, body, records)
        self.page_sizes.append(len(records))
        self._seen.update(_key(record) for record in records)
        try:
            self._count = to_int(body.get("count"))
        except NormalizationError:
            self._count = None
        self._limit = _server_limit(body)
        if self._count is not None and len(self._seen) >= self._count:
            return None
        if next_page is None and records and self._count is not None:
            return token + 1  # short, but count says more remain
        return next_page

    @property
    def count(self) -> int | None:
        """The total the server last said matches the query."""
        return self._count

    @override
    def after(self, token: int) -> int | None:
        """The page after ``token``, unless ``count`` says no record is left for it."""
        count, limit = self._count, self._limit
        if count is not None and limit and token * limit >= count:
            return None
        return token + 1


class KeysetPaginator:
    """``last_seen_id`` keyset pages, until the server says ``has_more`` is false.

    A body without ``has_more`` is read on to an empty page (one extra request rather
    than a silent stop); ``has_more`` may be a boolean or its text.
    """

    def __init__(self, start: object = None) -> None:
        """Start before any key (or after ``start``)."""
        self.start = start
        self._seen: set[object] = set()

    def next_token(
        self,
        token: object,  # noqa: ARG002 (the body carries the next key)
        body: t.Mapping[str, t.Any],
        records: t.Sequence[t.Any],
    ) -> object | None:
        """Return the next ``last_seen_id``, or None at the end.

        Raises:
            PaginationError: when the server hands back a key it gave before.
        """
        if not records or not _has_more(body):
            return None
        next_key = body.get("last_seen_id")
        if next_key is None:
            # "Return users after this id": the last one on this page.
            next_key = _key(records[-1])
        if next_key is None or next_key in self._seen:
            msg = (
                f"the server answered has_more with last_seen_id={next_key!r}, "
                "which would repeat a page: the tap stopped rather than loop"
            )
            raise PaginationError(msg)
        self._seen.add(next_key)
        return next_key


class SinglePage:
    """An endpoint that answers all its records at once: its first page is its last.

    No paging parameter is sent and no second request made, so there is nothing to
    loop on.
    """

    start = None

    def next_token(
        self,
        token: object,  # noqa: ARG002 (there is no next page)
        body: t.Mapping[str, t.Any],  # noqa: ARG002
        records: t.Sequence[t.Any],  # noqa: ARG002
    ) -> None:
        """There is no page after the first."""
        return


def _has_more(body: t.Mapping[str, t.Any]) -> bool:
    if body.get("has_more") is None:
        return True
    try:
        return bool(to_bool(body["has_more"]))
    except NormalizationError:
        msg = f"has_more={body['has_more']!r} is neither true nor false"
        raise PaginationError(msg) from None


def _key(record: t.Any) -> object:  # noqa: ANN401
    return record.get("id") if isinstance(record, dict) else record


def _server_limit(body: t.Mapping[str, t.Any]) -> int | None:
    try:
        limit = to_int(body.get("limit"))
    except NormalizationError:
        return None
    return limit if limit and limit > 0 else None
