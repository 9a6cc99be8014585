"""Paginators and time windows without HTTP: where each one ends."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tap_smartflo.call_windows import time_windows
from tap_smartflo.errors import PaginationError
from tap_smartflo.pagination import CountedPageNumberPaginator, KeysetPaginator

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def page(*ids, count=None, limit=3):
    return {"count": count, "limit": limit}, [{"id": i} for i in ids]


def test_time_windows_cover_the_range_once_sharing_their_edges():
    end = T0 + timedelta(days=65, hours=5)
    windows = list(time_windows(T0, end, timedelta(days=30)))
    assert windows == [
        (T0, T0 + timedelta(days=30)),
        (T0 + timedelta(days=30), T0 + timedelta(days=60)),
        (T0 + timedelta(days=60), end),
    ]


def test_no_windows_when_the_range_is_empty():
    assert list(time_windows(T0, T0, timedelta(days=1))) == []
    assert list(time_windows(T0, T0 - timedelta(days=1), timedelta(days=1))) == []


def test_a_count_that_is_reached_on_a_full_page_ends_without_an_empty_page():
    paginator = CountedPageNumberPaginator()
    assert paginator.next_token(1, *page(1, 2, 3, count=6)) == 2
    assert paginator.next_token(2, *page(4, 5, 6, count=6)) is None


def test_a_record_seen_on_two_pages_is_counted_once():
    # A call written mid-read pushed record 3 onto page 2: 5 distinct of 6.
    paginator = CountedPageNumberPaginator()
    assert paginator.next_token(1, *page(1, 2, 3, count=6)) == 2
    assert paginator.next_token(2, *page(3, 4, 5, count=7)) == 3
    assert paginator.next_token(3, *page(count=7)) is None


def test_without_count_the_page_number_rules_decide():
    paginator = CountedPageNumberPaginator()
    assert paginator.next_token(1, *page(1, 2, 3)) == 2
    assert paginator.next_token(2, *page(4)) is None


@pytest.mark.parametrize("has_more", [False, "false", 0])
def test_keyset_ends_when_has_more_says_so(has_more):
    body = {"has_more": has_more, "last_seen_id": 9}
    assert KeysetPaginator().next_token(None, body, [{"id": 9}]) is None


def test_keyset_without_has_more_goes_on_from_the_last_record_to_an_empty_page():
    paginator = KeysetPaginator()
    assert paginator.next_token(None, {}, [{"id": 4}, {"id": 9}]) == 9
    assert paginator.next_token(9, {}, []) is None


def test_keyset_that_repeats_a_key_stops_rather_than_loop():
    paginator = KeysetPaginator()
    body = {"has_more": True, "last_seen_id": 9}
    assert paginator.next_token(None, body, [{"id": 9}]) == 9
    with pytest.raises(PaginationError, match="repeat a page"):
        paginator.next_token(9, body, [{"id": 9}])


def test_count_bounds_fetching_ahead_but_never_the_page_needed():
    paginator = CountedPageNumberPaginator()
    assert paginator.after(1) == 2  # nothing known yet: a guess is allowed
    assert paginator.next_token(1, *page(1, 2, 3, count=7)) == 2
    assert paginator.after(2) == 3
    assert paginator.after(3) is None  # 3 pages of 3 hold all 7
