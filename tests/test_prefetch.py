"""The read-ahead scheduler alone: a fake fetch and a fake clock, no HTTP at all."""

from __future__ import annotations

import typing as t
from concurrent.futures import Future
from dataclasses import dataclass

from tap_smartflo.pagination import KeysetPaginator, PageNumberPaginator
from tap_smartflo.prefetch import read_pages

if t.TYPE_CHECKING:
    import threading

PAGE = 10


class Clock:
    """Time that passes only when a fake request says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class LazyFuture(Future):
    """A page fetched "in the background": the wait happens when it is asked for."""

    def __init__(self, send, cancelled: threading.Event) -> None:
        super().__init__()
        self.send, self.cancelled = send, cancelled

    def result(self, timeout=None):
        if not self.done():
            self.set_result(self.send(self.cancelled))
        return super().result(timeout)


class FakeApi:
    """``records`` records in pages of PAGE; each request takes ``latency``."""

    def __init__(
        self, records: int, latency: float, clock: Clock, page: int = PAGE
    ) -> None:
        self.records, self.latency, self.clock = records, latency, clock
        self.page = page
        self.requested: list[object] = []  # tokens, in the order requests were built
        self.sent: list[object] = []  # tokens, in the order they were sent
        self.in_background = 0
        self.most_in_flight = 0
        self.in_flight: list[LazyFuture] = []

    def request(self, token):
        self.requested.append(token)

        def send(cancelled: threading.Event):
            self.sent.append(token)
            self.clock.now += self.latency
            first = (int(token or 1) - 1) * self.page
            ids = list(range(first, min(first + self.page, self.records)))
            return {"limit": self.page}, [{"id": i} for i in ids]

        return send

    def background(self, send, cancelled):
        self.in_background += 1
        future = LazyFuture(send, cancelled)
        self.in_flight = [f for f in self.in_flight if not f.done()] + [future]
        self.most_in_flight = max(self.most_in_flight, len(self.in_flight))
        return future


@dataclass(frozen=True)
class Paced:
    """A pace that allows a request every ``interval`` seconds."""

    interval: float


def read(api: FakeApi, paginator, workers: int = 4, pace: float = 0.0) -> list[int]:
    pages = read_pages(
        api.request,
        paginator,
        workers=workers,
        clock=api.clock,
        background=api.background,
        pace=Paced(pace),
    )
    return [r["id"] for _, records in pages for r in records]


def test_a_fast_api_is_read_one_page_at_a_time():
    api = FakeApi(records=95, latency=0.0, clock=Clock())
    assert read(api, PageNumberPaginator()) == list(range(95))
    assert api.in_background == 0
    assert api.requested == list(range(1, 11))


def test_a_slow_api_gets_pages_ahead_doubling_up_to_the_workers():
    api = FakeApi(records=400, latency=0.05, clock=Clock())
    assert read(api, PageNumberPaginator(), workers=4) == list(range(400))
    assert api.in_background > 30
    assert api.most_in_flight == 4
    # Each page is asked for once; past the last page (41, empty) at most 3 more.
    assert len(api.requested) == len(set(api.requested))
    assert set(range(1, 42)) <= set(api.requested)
    assert len(api.requested) - 41 <= 3


def test_large_pages_keep_fewer_in_flight_so_fewer_go_past_the_end():
    # Pages of 500: at most 2 000 records (4 pages) in flight, whatever the workers.
    api = FakeApi(records=20_000, latency=0.05, clock=Clock(), page=500)
    assert read(api, PageNumberPaginator(), workers=8) == list(range(20_000))
    assert api.most_in_flight == 4
    assert len(api.requested) == len(set(api.requested))
    assert len(api.requested) - 41 <= 3


def test_a_wait_the_pace_explains_reads_no_page_ahead():
    # Each page waits 250 ms, and the account's pace allows one every 250 ms: the
    # wait is the pace's, and pages ahead would come no sooner (some would go
    # past the end, spending the account's allowance for nothing).
    api = FakeApi(records=400, latency=0.25, clock=Clock())
    assert read(api, PageNumberPaginator(), workers=8, pace=0.25) == list(range(400))
    assert api.in_background == 0
    assert api.requested == list(range(1, 42))


def test_a_network_slower_than_the_pace_still_reads_ahead():
    api = FakeApi(records=400, latency=0.5, clock=Clock())
    assert read(api, PageNumberPaginator(), workers=8, pace=0.25) == list(range(400))
    assert api.in_background > 30


def test_one_worker_never_reads_ahead():
    api = FakeApi(records=95, latency=0.05, clock=Clock())
    assert read(api, PageNumberPaginator(), workers=1) == list(range(95))
    assert api.in_background == 0
    assert api.requested == list(range(1, 11))


def test_keyset_pages_are_read_in_turn_whatever_the_latency():
    api = FakeApi(records=25, latency=0.05, clock=Clock())

    def request(token):
        api.requested.append(token)

        def keyset_send(cancelled):
            api.clock.now += api.latency
            first = 0 if token is None else int(token) + 1
            ids = list(range(first, min(first + PAGE, api.records)))
            return {"has_more": bool(ids)}, [{"id": i} for i in ids]

        return keyset_send

    pages = read_pages(
        request,
        KeysetPaginator(),
        workers=4,
        clock=api.clock,
        background=api.background,
    )
    assert [len(records) for _, records in pages] == [10, 10, 5, 0]
    assert api.in_background == 0
    assert api.requested == [None, 9, 19, 24]  # None: "from the start"


def test_pages_no_longer_wanted_are_cancelled_when_reading_stops():
    api = FakeApi(records=1000, latency=0.05, clock=Clock())
    pages = read_pages(
        api.request,
        PageNumberPaginator(),
        workers=4,
        clock=api.clock,
        background=api.background,
    )
    for _ in range(6):
        next(pages)
    pending = [f for f in api.in_flight if not f.done()]
    assert pending
    pages.close()
    assert all(f.cancelled.is_set() for f in pending)
