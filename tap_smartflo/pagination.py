"""How the tap walks Smartflo's pages, and how it knows it has reached the end.

These paginators look at the parsed body of a page (parsed once, by the stream) rather
than at the raw HTTP response as the SDK's paginators do: the tap fetches page-number
pages ahead of time, so the next page number must be known without a response, and
the end must be judged on each body in page order.
"""

from __future__ import annotations

import typing as t

from tap_smartflo.normalize import NormalizationError, to_int


class PaginationError(RuntimeError):
    """The API's pages do not add up: going on would loop or duplicate records."""


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

    @staticmethod
    def after(token: int) -> int:
        """Return the page number after ``token``, for fetching ahead."""
        return token + 1


class KeysetPaginator:
    """``last_seen_id`` keyset pages, until the server says ``has_more`` is false."""

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
        if not records or not body.get("has_more"):
            return None
        next_key = body.get("last_seen_id")
        if next_key is None or next_key in self._seen:
            msg = (
                f"the server answered has_more with last_seen_id={next_key!r}, "
                "which would repeat a page: the tap stopped rather than loop"
            )
            raise PaginationError(msg)
        self._seen.add(next_key)
        return next_key


def _key(record: t.Any) -> object:  # noqa: ANN401
    return record.get("id") if isinstance(record, dict) else record


def _server_limit(body: t.Mapping[str, t.Any]) -> int | None:
    try:
        limit = to_int(body.get("limit"))
    except NormalizationError:
        return None
    return limit if limit and limit > 0 else None
