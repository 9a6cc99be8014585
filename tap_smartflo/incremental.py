"""Bookmarks: where a run starts, how far it may move, and the lookback overlap.

The rules are pure functions and one small class (``Overlap``); the two stream
classes below apply them to the SDK's state.

- A run starts at the previous bookmark minus a lookback, never before
  ``start_date`` (``replicate_from``).
- A bookmark never moves backwards (``is_after``): results come in no usable order,
  so streams are unsorted and the SDK promotes the newest value a run saw at the
  end; a run that sees only older records (a lookback) must keep the old one.
- The lookback is re-read but not re-emitted (``Overlap``).
"""

from __future__ import annotations

import hashlib
import typing as t
from datetime import datetime, timedelta

import msgspec
from typing_extensions import override

from tap_smartflo.client import SmartfloStream
from tap_smartflo.normalize import UTC, format_utc, parse_time, query_time

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from singer_sdk.helpers.types import Context

#: Where a stream's state remembers the versions it emitted near its bookmark, and
#: how many at most (the state stays small whatever the data).
EMITTED_KEY = "emitted_near_bookmark"
REMEMBER_AT_MOST = 1000
_SORTED_JSON = msgspec.json.Encoder(order="sorted")


def replicate_from(
    *,
    start_date: datetime | None,
    bookmark: datetime | None,
    lookback: timedelta,
) -> datetime | None:
    """The earliest time a run must emit (None: everything).

    The bookmark less the lookback, never before ``start_date``; ``start_date``
    alone on a first sync.
    """
    bounds = [start_date] if start_date is not None else []
    if bookmark is not None:
        bounds.append(bookmark - lookback)
    return max(bounds) if bounds else None


def is_after(moment: datetime, bookmark: str | None) -> bool:
    """Whether ``moment`` lies after the bookmark ``bookmark`` (or there is none)."""
    return bookmark is None or t.cast("datetime", parse_time(bookmark)) < moment


def version_of(updated_at: str, record: Mapping[str, t.Any]) -> str:
    """A record's version: its ``updated_at`` and a digest of its content.

    ``updated_at`` has whole seconds, so two edits within one second share it: the
    digest tells them apart. The time comes first, so the string order of versions
    is still time order.
    """
    return f"{updated_at} {content_digest(record)}"


def content_digest(record: Mapping[str, t.Any]) -> str:
    """A short digest of a record's content (its keys in order): equal, unchanged."""
    return hashlib.blake2b(_SORTED_JSON.encode(record), digest_size=6).hexdigest()


def _time_of(version: str) -> datetime:
    return t.cast("datetime", parse_time(version.split(" ", 1)[0]))


class Overlap:
    """Re-read the lookback without re-emitting it.

    The state remembers which version (``version_of``: ``updated_at`` and a digest
    of the content) of each record near the bookmark a run emitted; the next run
    skips exactly those versions and emits anything new or changed in the overlap,
    even a change within the same second. Only the newest ``at_most`` are
    remembered: beyond that the overlap is emitted again (at least once, never
    lost). A state written before versions had a digest matches nothing: its
    overlap is emitted once more.
    """

    def __init__(
        self,
        emitted_before: object,
        *,
        floor: str | None,
        lookback: timedelta,
        at_most: int = REMEMBER_AT_MOST,
        content: Callable[[Mapping[str, t.Any]], Mapping[str, t.Any]] = lambda r: r,
    ) -> None:
        """Start from what the last run remembered; emit nothing before ``floor``.

        ``content`` gives what of a record its version digests (all of it by
        default).
        """
        self.before: dict[str, str] = (
            emitted_before if isinstance(emitted_before, dict) else {}
        )
        self.floor = floor
        self.lookback = lookback
        self.at_most = at_most
        self.content = content
        #: identity -> version of what this run emitted.
        self.emitted: dict[str, str] = {}

    def admit(
        self, identity: str, updated_at: str | None, record: Mapping[str, t.Any]
    ) -> bool:
        """Whether to emit the record ``identity``, updated at ``updated_at``."""
        if updated_at is None:
            return True
        # Servers may read updated_after in another zone and send more: keep only
        # what this run asked for.
        if self.floor is not None and updated_at < self.floor:
            return False
        version = version_of(updated_at, self.content(record))
        if self.before.get(identity) == version:
            return False  # the last run emitted this very version
        self.emitted[identity] = version
        if len(self.emitted) > 4 * self.at_most:
            kept = self.nearest(self.emitted, max(self.emitted.values()))
            self.emitted = {k: self.emitted[k] for k in kept}
        return True

    def remembered(self, bookmark: str | None) -> dict[str, str] | None:
        """What the state should remember after the run (None: leave it as it is)."""
        newest = max([*self.emitted.values(), bookmark or ""])
        if not newest:
            return None
        versions = {**self.before, **self.emitted}
        return {k: versions[k] for k in self.nearest(versions, newest)}

    def nearest(self, versions: Mapping[str, str], newest: str) -> list[str]:
        """The keys of the newest ``at_most`` versions within the lookback.

        A version is a time, or starts with one (``version_of``), so that its string
        order is time order.
        """
        horizon = format_utc(_time_of(newest) - self.lookback)
        near = sorted(
            ((v, k) for k, v in versions.items() if str(v) >= horizon), reverse=True
        )
        return [k for _, k in near[: self.at_most]]


class IncrementalSmartfloStream(SmartfloStream):
    """A stream bookmarked on a time, whose bookmark never moves backwards.

    The SDK promotes the newest replication-key value a run saw (its progress
    markers) to the bookmark at the end of an unsorted stream. The stream seeds the
    markers with the previous bookmark, so a run that sees only older records keeps
    it. The markers live in the stream's state as the SDK documents its layout
    (``progress_markers``: ``replication_key``, ``replication_key_value``).
    """

    is_sorted = False
    reads_whole_table = False

    @property
    def lookback(self) -> timedelta:
        """How far before the previous bookmark a run starts reading again."""
        return timedelta(minutes=float(self.config["lookback_minutes"]))

    def replicate_from(self, context: Context | None) -> datetime | None:
        """The earliest replication-key time this run must emit (fixed once asked)."""
        if getattr(self, "_replicate_from", False) is not False:
            return t.cast("datetime | None", self._replicate_from)
        start_date = self.config.get("start_date")
        self._replicate_from: datetime | None = replicate_from(
            start_date=parse_time(start_date, naive_tz=UTC) if start_date else None,
            bookmark=self._previous_bookmark(context),
            lookback=self.lookback,
        )
        return self._replicate_from

    def _previous_bookmark(self, context: Context | None) -> datetime | None:
        state = self.get_context_state(context)
        if state.get("replication_key") != self.replication_key:
            return None
        return parse_time(state.get("replication_key_value"))

    def _progress_markers(self, context: Context | None) -> dict[str, t.Any]:
        """This run's progress markers, which the SDK promotes to the bookmark."""
        state = self.get_context_state(context)
        markers = state.setdefault(
            "progress_markers", {"Note": "Progress is not resumable if interrupted."}
        )
        markers["replication_key"] = self.replication_key
        return t.cast("dict[str, t.Any]", markers)

    def seed_bookmark(self, context: Context | None) -> None:
        """Start this run's bookmark at the previous one, so it can only move on.

        A bookmark in the future (the state warned of it) is not seeded: the SDK
        would cap it at the run's start, moving it back. Left alone, it stays.
        """
        bookmark = self._previous_bookmark(context)
        if bookmark is not None and bookmark <= datetime.now(UTC):
            markers = self._progress_markers(context)
            markers["replication_key_value"] = format_utc(bookmark)

    def advance_bookmark(self, context: Context | None, moment: datetime) -> None:
        """Move the bookmark to ``moment`` now (never back) and emit it in a STATE.

        For a caller that has emitted every record before ``moment``: the progress is
        durable at once, so a run that fails later resumes from here.
        """
        value = format_utc(moment)
        markers = self._progress_markers(context)
        if is_after(moment, markers.get("replication_key_value")):
            markers["replication_key_value"] = value
        state = self.get_context_state(context)
        if state.get("replication_key") != self.replication_key or is_after(
            moment, state.get("replication_key_value")
        ):
            state["replication_key"] = self.replication_key
            state["replication_key_value"] = value
            self.services.output.write_state()


class UpdatedAfterStream(IncrementalSmartfloStream):
    """A stream filtered with ``updated_after`` and bookmarked on ``updated_at``.

    Each run re-reads the lookback before the previous bookmark, for changes
    committed late, without re-emitting what the last run emitted (``Overlap``).
    """

    replication_key = "updated_at"

    @override
    def get_url_params(
        self, context: Context | None, next_page_token: t.Any
    ) -> dict[str, t.Any]:
        params = super().get_url_params(context, next_page_token)
        if (after := self.replicate_from(context)) is not None:
            # One second earlier, in case the server compares exclusively.
            params["updated_after"] = query_time(after - timedelta(seconds=1))
        return params

    def version_content(self, record: Mapping[str, t.Any]) -> Mapping[str, t.Any]:
        """What of ``record`` its version digests: what the API sent (by default, all).

        Columns the tap derives from other fields are left out, so that a catalog
        that gains one does not make the whole overlap look changed.
        """
        return record

    @override
    def request_records(self, context: Context | None) -> Iterable[dict[str, t.Any]]:
        self.seed_bookmark(context)
        after = self.replicate_from(context)
        state = self.get_context_state(context)
        overlap = Overlap(
            state.get(EMITTED_KEY),
            floor=None if after is None else format_utc(after),
            lookback=self.lookback,
            content=self.version_content,
        )
        keys = self.primary_keys or ()
        for record in super().request_records(context):
            identity = "|".join(str(record[k]) for k in keys)
            if overlap.admit(identity, record[self.replication_key], record):
                yield record
        remembered = overlap.remembered(state.get("replication_key_value"))
        if remembered is not None:
            state[EMITTED_KEY] = remembered
