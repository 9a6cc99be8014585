"""How an endpoint pages, and reading its pages: one paging per stream class.

A stream says how its endpoint pages in one line (``paging = Keyset()``);
``PageReader`` asks for the pages in order (reading ahead where that helps, see
``prefetch``) at the largest size the endpoint serves: a ``limit`` it refuses at
the first page is stepped down (``PageSize.refused``), and what the pages prove it
serves is remembered for the next runs (``AccountMemory``).
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

from typing_extensions import override

from tap_smartflo.errors import LimitRefusedError
from tap_smartflo.pagination import (
    CountedPageNumberPaginator,
    KeysetPaginator,
    PageNumberPaginator,
    PageSize,
    SinglePage,
)
from tap_smartflo.prefetch import read_pages

if t.TYPE_CHECKING:
    import logging
    from collections.abc import Iterator

    import requests

    from tap_smartflo.memory import AccountMemory
    from tap_smartflo.prefetch import Page, Send
    from tap_smartflo.transport import Transport

Paginator = PageNumberPaginator | KeysetPaginator | SinglePage


@dataclass(frozen=True)
class PageNumbers:
    """Pages numbered from 1 (``page``), ``limit`` records each."""

    #: The largest ``limit`` the endpoint is documented to accept, if it says.
    max_size: int | None = None
    param: str = "page"

    def size(self, page_size: int, remembered: int | None) -> PageSize:
        """What to ask for a page, and what the endpoint has shown it serves.

        ``page_size`` at most, and at most the documented maximum (taken as proof
        of what the endpoint serves) and what an earlier run learned it serves
        (``remembered``).
        """
        if self.max_size is not None:
            page_size = min(page_size, self.max_size)
        return PageSize(page_size, remembered=remembered, documented=self.max_size)

    def paginator(self, size: PageSize) -> Paginator:
        """A fresh paginator for one query."""
        return PageNumberPaginator(size)

    def params(self, size: PageSize, token: object) -> dict[str, t.Any]:
        """The query parameters for the page ``token``."""
        return {"limit": size.limit, self.param: token}

    def check_params(self) -> dict[str, t.Any]:
        """Query parameters that ask for one record (a connection test)."""
        return {"limit": 1}


@dataclass(frozen=True)
class CountedPageNumbers(PageNumbers):
    """Numbered pages whose body says how many records the query has (``count``)."""

    @override
    def paginator(self, size: PageSize) -> CountedPageNumberPaginator:
        return CountedPageNumberPaginator(size)


@dataclass(frozen=True)
class Keyset(PageNumbers):
    """Keyset pages: each asks for the records after the last one's key."""

    param: str = "last_seen_id"

    @override
    def paginator(self, size: PageSize) -> KeysetPaginator:
        return KeysetPaginator(size)


@dataclass(frozen=True)
class Unpaged(PageNumbers):
    """One request, no parameters: the endpoint answers all its records at once.

    Sending ``limit`` or ``page`` to it could only do harm: a server that honoured
    an undocumented ``limit`` would cut the list short without saying so. With no
    ``limit`` asked, none can be refused: a 422 is about something else (a window,
    an id), never a page size to step down from.
    """

    @override
    def size(self, page_size: int, remembered: int | None) -> PageSize:
        return PageSize()

    @override
    def paginator(self, size: PageSize) -> SinglePage:
        return SinglePage()

    @override
    def params(self, size: PageSize, token: object) -> dict[str, t.Any]:
        return {}

    @override
    def check_params(self) -> dict[str, t.Any]:
        return {}


@dataclass(frozen=True, kw_only=True)
class PageReader:
    """Reads the pages of one endpoint for one stream, at the size it serves."""

    stream: str
    #: The endpoint's path template (``/v1/broadcast/leads/{list_id}``).
    path: str
    #: Where the records are in a page's body; None: the body is the list.
    records_key: str | None
    size: PageSize
    transport: Transport
    memory: AccountMemory
    #: The most requests in flight at once.
    workers: int
    logger: logging.Logger

    def pages(
        self,
        prepare: t.Callable[[object], requests.PreparedRequest],
        paginator: t.Callable[[], Paginator],
        path: str,
    ) -> Iterator[Page]:
        """Yield (body, raw records) for every page of ``path``, in page order.

        ``prepare(token)`` builds the request for a page. A server that refuses the
        ``limit`` at the first page is asked again for fewer records a page, with
        one warning; once pages were read, the records already out fix where the
        query stands, so the run fails rather than guess.
        """
        while True:
            received = False
            try:
                for page in read_pages(
                    lambda token: self._send(prepare(token), path, token),
                    paginator(),
                    workers=self.workers,
                    pace=self.transport.pacer,
                ):
                    received = True
                    self._remember_size()
                    yield page
            except LimitRefusedError as exc:
                if received or not self._ask_less(exc, path):
                    raise
            else:
                return

    def _send(
        self, prepared: requests.PreparedRequest, path: str, token: object
    ) -> Send:
        what = path if token is None else f"{path} (page {token})"
        return lambda cancelled: self.transport.fetch(
            prepared,
            stream=self.stream,
            path=path,
            records_key=self.records_key,
            what=what,
            cancelled=cancelled,
        )

    def _remember_size(self) -> None:
        """Keep what the pages proved the endpoint serves, for the next runs."""
        learned = self.size.learned
        if learned is not None and self.memory.page_sizes.get(self.path) != learned:
            self.memory.remember_page_size(self.path, learned)

    def _ask_less(self, refusal: LimitRefusedError, path: str) -> bool:
        """Step the page size down after ``refusal``; whether there was a step."""
        refused = self.size.limit
        limit = self.size.refused(refusal.numbers)
        if limit is None:
            return False
        self.logger.warning(
            "%s refused limit=%s (HTTP %d%s): the tap asks for %d records a page "
            "from now on (and in the next runs, once a page has held that many)",
            path,
            refused,
            refusal.status,
            refusal.said,
            limit,
        )
        return True
