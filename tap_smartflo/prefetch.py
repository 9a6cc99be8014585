"""Reading pages ahead: which pages are in flight while earlier ones are written.

Page numbers are known in advance, so when the network, not the tap, is what takes
time, the next pages are fetched while the current one is written; records still
leave in page order, and each page is judged (end, repeat) before its records leave.

The tap starts one page at a time: an incremental run of one page costs one request,
and threads would only slow a fast API down. Once waiting on a page takes more than
NETWORK_SHARE of the time writing one takes (and more than SLOW_WAIT), it keeps a
page in flight, and doubles the pages in flight (up to ``workers``, and up to
AHEAD_RECORDS records) whenever it still waits that long; a page taken is replaced
before its records are written. With one page ahead nothing is wasted: a full page
means the next one is needed (more records, or the empty page that ends the data).
With more ahead, as many requests less one may go past the last page.

Nothing here knows HTTP or the SDK: a page is whatever ``request(token)`` returns.
"""

from __future__ import annotations

import threading
import time
import typing as t
from collections import deque
from concurrent.futures import Future

from tap_smartflo.pagination import PageNumberPaginator

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from tap_smartflo.pagination import KeysetPaginator, SinglePage

#: A page: its envelope (the body without the records) and its records.
Page = tuple[dict[str, t.Any], list[t.Any]]
#: Sends one prepared request (on any thread); stops early once the event is set.
Send = t.Callable[[threading.Event], Page]
#: Runs a ``Send`` away from the caller; its outcome lands in the future.
Background = t.Callable[[Send, threading.Event], "Future[Page]"]


class Paced(t.Protocol):
    """What keeps the pace: the seconds between request starts it allows now."""

    @property
    def interval(self) -> float:  # noqa: D102
        ...


#: Fetch pages ahead once waiting for a page takes this share of writing one, and
#: at least SLOW_WAIT seconds: below that, threads cost more than they hide.
NETWORK_SHARE = 0.5
SLOW_WAIT = 0.005
#: Waits up to this many times the pace's interval are the pace's doing.
PACED_WAIT = 1.2
#: At most this many records in flight (pages of the largest size seen so far):
#: each page in flight may be one past the end of the data, and is held in memory.
AHEAD_RECORDS = 2000


def in_background(send: Send, cancelled: threading.Event) -> Future[Page]:
    """Run ``send`` in a daemon thread, its outcome in the returned future.

    Pages no longer wanted never hold up the end of a stream or the exit, as a
    thread pool's workers would.
    """
    future: Future[Page] = Future()

    def run() -> None:
        try:
            future.set_result(send(cancelled))
        except BaseException as exc:  # noqa: BLE001 (handed to the waiting thread)
            future.set_exception(exc)

    threading.Thread(target=run, daemon=True).start()
    return future


def read_pages(  # noqa: PLR0913 (the pages, and what decides how many ahead)
    request: Callable[[t.Any], Send],
    paginator: PageNumberPaginator | KeysetPaginator | SinglePage,
    *,
    workers: int,
    clock: Callable[[], float] = time.monotonic,
    background: Background = in_background,
    pace: Paced | None = None,
) -> Iterator[Page]:
    """Yield (body, records) for every page, in page order.

    ``request(token)`` is called on the caller's thread (it prepares the request);
    the ``Send`` it returns may run on another. ``pace.interval`` is the seconds
    between request starts the account's pace allows: a wait it explains is no reason to
    read ahead (pages would come no sooner, and some would go past the end).
    """
    if not isinstance(paginator, PageNumberPaginator) or workers == 1:
        yield from _in_turn(request, paginator)
        return
    cancelled = threading.Event()
    window = _Window(request, paginator, background, cancelled)
    ahead = 0
    waits, writes = _RecentMean(), _RecentMean()
    token: int | None = paginator.start
    try:
        while token is not None:
            waiting_since = clock()
            body, records = window.take(token)
            waited = clock() - waiting_since
            next_token = paginator.next_token(token, body, records)
            if next_token is not None:
                # The page taken is replaced before its records are written, so
                # that as many pages stay in flight while they are.
                window.fill(ahead)
            writing_since = clock()
            yield body, records
            written = clock() - writing_since
            if token > paginator.start:  # the first request also connects
                interval = 0.0 if pace is None else pace.interval
                waits.add(waited)
                writes.add(written)
                if next_token is not None and waits.mean > max(
                    SLOW_WAIT, writes.mean * NETWORK_SHARE, interval * PACED_WAIT
                ):
                    most = max(1, AHEAD_RECORDS // max(paginator.largest, 1))
                    ahead = min(max(1, ahead * 2), workers, most)
            if next_token is not None:
                window.fill(ahead)
            token = next_token
    finally:
        cancelled.set()


class _Window:
    """The pages in flight, in page order, and the last page number requested."""

    def __init__(
        self,
        request: Callable[[t.Any], Send],
        paginator: PageNumberPaginator,
        background: Background,
        cancelled: threading.Event,
    ) -> None:
        self.request, self.paginator = request, paginator
        self.background, self.cancelled = background, cancelled
        self.in_flight: deque[Future[Page]] = deque()
        self.last_requested = 0

    def take(self, token: int) -> Page:
        """Page ``token``: the oldest in flight, else fetched now."""
        self.last_requested = max(self.last_requested, token)
        if self.in_flight:
            return self.in_flight.popleft().result()
        return self.request(token)(self.cancelled)

    def fill(self, ahead: int) -> None:
        """Send the pages after the last one requested, until ``ahead`` are in flight.

        Not past a page the paginator knows the data ends before (a page it does
        need is then fetched in turn, by ``take``).
        """
        while len(self.in_flight) < ahead:
            if (following := self.paginator.after(self.last_requested)) is None:
                return
            self.last_requested = following
            self.in_flight.append(
                self.background(self.request(following), self.cancelled)
            )


def _in_turn(
    request: Callable[[t.Any], Send],
    paginator: PageNumberPaginator | KeysetPaginator | SinglePage,
) -> Iterator[Page]:
    # The first token may be None (a keyset's "from the start", the one request of
    # an endpoint that does not page); after that, None means there is no next page.
    never = threading.Event()
    token: t.Any = paginator.start
    while True:
        body, records = request(token)(never)
        # Judged before the records leave: a repeated page is never emitted.
        token = paginator.next_token(token, body, records)
        yield body, records
        if token is None:
            return


class _RecentMean:
    """A mean that forgets (exponentially weighted): steady against one slow page."""

    def __init__(self) -> None:
        self.mean = 0.0
        self._empty = True

    def add(self, value: float) -> None:
        self.mean = value if self._empty else 0.7 * self.mean + 0.3 * value
        self._empty = False
