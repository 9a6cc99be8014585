"""How the tap walks Smartflo's pages, and how it knows it has reached the end.

These paginators look at the parsed body of a page (parsed once, by the stream) rather
than at the raw HTTP response as the SDK's paginators do: the tap fetches page-number
pages ahead of time, so the next page number must be known without a response, and
the end must be judged on each body in page order.
"""

from __future__ import annotations

import hashlib
import typing as t

from typing_extensions import override

from tap_smartflo.errors import PaginationError
from tap_smartflo.normalize import NormalizationError, to_bool, to_int

#: The ``limit`` Smartflo documents (for contact groups and broadcasts): where a
#: server refuses a larger one without naming its own, the tap asks for this.
DOCUMENTED_LIMIT = 100


class PageSize:
    """How many records an endpoint is asked for a page, and how many it serves.

    One per endpoint for a run, shared by every query of it. Only what comes back
    counts, never the envelope's ``limit`` (a server may echo the limit it was
    asked for and serve fewer). The most records a page has held is the proven
    size once a fuller page or a next page proves it: a page holding all that was
    asked proves it at once; a shorter page, only when another page follows it. A
    size remembered from an earlier run, or a documented one, counts as proven,
    unless the server says it serves fewer than it is asked.
    """

    def __init__(
        self,
        limit: int | None = None,
        *,
        remembered: int | None = None,
        documented: int | None = None,
    ) -> None:
        """Ask for ``limit`` records a page (at most ``remembered``, when known).

        A ``limit`` within the ``documented`` maximum, or the ``remembered`` size,
        counts as proven until the server says it serves fewer.
        """
        if limit is not None and remembered is not None:
            limit = min(limit, remembered)
        #: The ``limit`` to send.
        self.limit = limit
        assumed = remembered is not None or (
            documented is not None and limit is not None and limit <= documented
        )
        #: The most records a page is proven to hold (0: nothing proven yet).
        self.proven = (limit or 0) if assumed else 0
        self._remembered = remembered
        #: Whether ``proven`` comes from memory or the documents, not from pages.
        self._assumed = assumed
        self._refused = False

    def ends(self, served: int, *, earlier: int, reported: int | None) -> bool:
        """Whether a page of ``served`` records ends the data.

        ``earlier`` is the most records an earlier page of the same query held (0
        for a first page), ``reported`` the envelope's ``limit``.
        """
        if (
            self._assumed
            and reported is not None
            and self.limit is not None
            and reported < self.limit
        ):
            # The server now says it serves fewer: prove the size again.
            self.proven, self._assumed = 0, False
        if not served:
            return True
        # This page came after the earlier ones: each of them was a full page.
        shorter = served < max(self.proven, earlier)
        full = served if self.limit is not None and served >= self.limit else 0
        if max(earlier, full) > self.proven:
            self.proven, self._assumed = max(earlier, full), False
        return shorter

    def refused(self, numbers: t.Iterable[int]) -> int | None:
        """Step down after the server refused ``limit``; the new limit, or None.

        ``numbers`` are those in the server's message: the largest below the
        refused limit is the one it names; without one, DOCUMENTED_LIMIT. None when
        nothing smaller is known to ask for.
        """
        if self.limit is None:
            return None
        below = [n for n in numbers if 0 < n < self.limit]
        if below:
            self.limit = max(below)
        elif self.limit > DOCUMENTED_LIMIT:
            self.limit = DOCUMENTED_LIMIT
        else:
            return None
        # A server that refuses what it served before has changed: prove anew.
        self.proven, self._assumed, self._refused = 0, False, True
        return self.limit

    @property
    def learned(self) -> int | None:
        """A size this run proved that the next run should ask for, if any.

        A size larger than the remembered one, or the server's own limit (it served
        fewer than asked, or refused more); not a smaller ``page_size`` a user set,
        which would hold the next runs below what the server serves.
        """
        proven, remembered = self.proven, self._remembered
        if not proven or self._assumed or proven == remembered:
            return None
        capped = self._refused or (self.limit is not None and proven < self.limit)
        return proven if remembered is None or proven > remembered or capped else None


class PageNumberPaginator:
    """1-based page numbers (``page=1, 2, ...``) with a safe end condition.

    The data ends at an empty page, or at a page shorter than the proven page size
    (see ``PageSize``); never at a page merely shorter than the limit asked for or
    the envelope's ``limit``: servers cap ``limit`` silently, and some echo the
    limit they were asked for. A page whose records are an earlier page's again
    (the one before, or any: pages that cycle) means the server ignores or wraps
    ``page``: that stops the sync with an error rather than looping for ever. Each
    page is remembered by a digest of its records' keys (16 bytes a page).
    """

    def __init__(self, size: PageSize | None = None, start: int = 1) -> None:
        """Start at page ``start``, judging pages by the endpoint's ``size``."""
        self.start = start
        self.size = PageSize() if size is None else size
        #: digest of a page's keys -> the page that had them.
        self._pages: dict[bytes, int] = {}
        #: The most records a page of this query has held.
        self.largest = 0

    def next_token(
        self, token: int, body: t.Mapping[str, t.Any], records: t.Sequence[t.Any]
    ) -> int | None:
        """Return the page after ``token``, or None when ``body`` is the last page.

        Raises:
            PaginationError: when a page repeats the previous one.
        """
        if records:
            digest = _digest(records)
            if (earlier := self._pages.get(digest)) is not None:
                msg = (
                    f"page {token} returned the same records as page {earlier}: "
                    "the server seems to ignore the 'page' parameter, so the tap "
                    "stopped rather than loop"
                )
                raise PaginationError(msg)
            self._pages[digest] = token
        ends = self.size.ends(
            len(records), earlier=self.largest, reported=_server_limit(body)
        )
        self.largest = max(self.largest, len(records))
        return None if ends else token + 1

    def after(self, token: int) -> int | None:
        """Return the page number after ``token``, for fetching ahead.

        None when the paginator already knows the data ends before that page.
        """
        return token + 1


class CountedPageNumberPaginator(PageNumberPaginator):
    """Page numbers for a query whose every page says ``count``, the total matching it.

    The query is done once as many distinct records as the latest ``count`` have been
    read, so a total that is a multiple of the page size costs no extra request for
    an empty page. Short of that, only an empty page ends it: a short page while
    ``count`` says more remain is a server capping ``limit`` without saying so, and
    the next page is read. Records written while the pages are read shift them: a
    record seen on two pages is counted once.
    """

    def __init__(self, size: PageSize | None = None, start: int = 1) -> None:
        """Start at page ``start``, judging pages by the endpoint's ``size``."""
        super().__init__(size, start)
        self._seen: set[object] = set()
        self._count: int | None = None
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
        """The page after ``token``, unless ``count`` says no record is left for it.

        Pages hold at least the most records one has held (not the envelope's
        ``limit``, which may be the limit asked for).
        """
        count, served = self._count, self.largest
        if count is not None and served and token * served >= count:
            return None
        return token + 1


class KeysetPaginator:
    """Keyset pages, until the server says ``has_more`` (or ``hasMore``) is false.

    The next key is the body's ``last_seen_id``, else the last record's ``id`` (as
    ``last_seen_id`` for users and DND leads, ``cursor`` for DND lists). A body
    without ``has_more`` is read on to an empty page, or to a page shorter
    than the proven page size (see ``PageSize``); ``has_more`` may be a boolean or
    its text.
    """

    def __init__(self, size: PageSize | None = None, start: object = None) -> None:
        """Start before any key (or after ``start``), judging pages by ``size``."""
        self.start = start
        self.size = PageSize() if size is None else size
        self._seen: set[object] = set()
        self.largest = 0

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
        short = self.size.ends(len(records), earlier=self.largest, reported=None)
        self.largest = max(self.largest, len(records))
        has_more = _has_more(body)
        if not records or has_more is False or (has_more is None and short):
            return None
        next_key = body.get("last_seen_id")
        if next_key is None:
            # "Return users after this id": the last one on this page.
            next_key = _key(records[-1])
        if next_key is None or next_key in self._seen:
            msg = (
                f"the server said more pages follow, after key {next_key!r}, which "
                "would repeat a page (it seems to ignore the keyset parameter): the "
                "tap stopped rather than loop"
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


#: How envelopes spell "more pages follow": users ``has_more``, DND lists and leads
#: ``hasMore``.
HAS_MORE_KEYS = ("has_more", "hasMore")


def _has_more(body: t.Mapping[str, t.Any]) -> bool | None:
    """What ``has_more`` (or ``hasMore``) says (None: the body does not say)."""
    for key in HAS_MORE_KEYS:
        if body.get(key) is None:
            continue
        try:
            return bool(to_bool(body[key]))
        except NormalizationError:
            msg = f"{key}={body[key]!r} is neither true nor false"
            raise PaginationError(msg) from None
    return None


def _digest(records: t.Sequence[t.Any]) -> bytes:
    """A digest of the keys of ``records``, in order (the page's identity)."""
    keys = repr([_key(record) for record in records]).encode()
    return hashlib.blake2b(keys, digest_size=16).digest()


def _key(record: t.Any) -> object:  # noqa: ANN401
    return record.get("id") if isinstance(record, dict) else record


def _server_limit(body: t.Mapping[str, t.Any]) -> int | None:
    try:
        limit = to_int(body.get("limit"))
    except NormalizationError:
        return None
    return limit if limit and limit > 0 else None
