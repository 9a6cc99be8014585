"""Paginators and time windows without HTTP: where each one ends."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tap_smartflo.call_windows import time_windows
from tap_smartflo.errors import PaginationError
from tap_smartflo.pagination import (
    CountedPageNumberPaginator,
    KeysetPaginator,
    PageNumberPaginator,
    PageSize,
)

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


def test_a_short_page_ends_the_data_only_once_the_size_is_proven():
    size = PageSize(1000)
    paginator = PageNumberPaginator(size)
    assert paginator.next_token(1, {"limit": 1000}, [{"id": i} for i in range(37)]) == 2
    assert size.proven == 0  # 37 of 1000: the data may have ended, or not
    assert paginator.next_token(2, {"limit": 1000}, [{"id": 37}]) is None
    assert size.proven == 37  # page 2 came: page 1 was a full page
    assert size.learned == 37


def test_a_full_page_proves_the_size_at_once():
    size = PageSize(3)
    paginator = PageNumberPaginator(size)
    assert paginator.next_token(1, *page(1, 2, 3)) == 2
    assert size.proven == 3
    assert paginator.next_token(2, *page(4, 5)) is None


def test_a_refused_limit_steps_down_to_the_number_named_or_the_documented_100():
    size = PageSize(1000)
    assert size.refused((1000, 250)) == 250
    assert size.refused(()) == 100
    assert size.refused(()) is None  # nothing smaller is known: the error stands
    assert size.limit == 100


def test_a_smaller_page_size_set_by_a_user_is_not_remembered_over_a_larger_one():
    size = PageSize(20, remembered=500)
    paginator = PageNumberPaginator(size)
    assert paginator.next_token(1, *page(*range(20), limit=20)) == 2
    assert size.learned is None
    capped = PageSize(1000, remembered=500)
    paginator = PageNumberPaginator(capped)
    # The server says it serves 100 now: 500 is no longer taken as proven.
    assert paginator.next_token(1, *page(*range(100), limit=100)) == 2
    assert paginator.next_token(2, *page(*range(100, 200), limit=100)) == 3
    assert capped.learned == 100
