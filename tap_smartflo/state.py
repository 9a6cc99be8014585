"""The STATE a run is given is input: every value in it is checked before use.

A value of the wrong shape (a hand-edited file, a state backend's mix-up, an older
tap's layout) is dropped with one warning that names it and says what the run does
instead, never a traceback. What the tap remembers of the account (``account``) is
checked by ``memory``; this module checks the SDK's ``bookmarks``:

- ``bookmarks`` is an object of streams, each an object;
- a ``replication_key_value`` is a time as the tap writes it (text, with an
  offset); otherwise the stream starts from ``start_date``;
- ``emitted_near_bookmark`` maps record keys to versions (text to text);
- ``progress_markers`` (an interrupted run's) is an object, ``partitions`` a list
  of objects each with a ``context`` object.

A bookmark in the future is kept as it is (the tap never moves one back), with a
warning: the stream emits nothing until then.
"""

from __future__ import annotations

import typing as t
from datetime import datetime, timezone

from tap_smartflo.incremental import EMITTED_KEY
from tap_smartflo.normalize import NormalizationError, parse_time
from tap_smartflo.redact import quoted

if t.TYPE_CHECKING:
    from collections.abc import Callable


def checked_state(
    state: object,
    warn: Callable[[str], None],
    now: datetime | None = None,
) -> dict[str, t.Any]:
    """``state`` without the values of a wrong shape; ``warn`` is told each one."""
    state = state_object(state, warn)
    bookmarks = state.get("bookmarks")
    if bookmarks is None:
        return state
    if not isinstance(bookmarks, dict):
        warn(
            f"The state's 'bookmarks' is not an object ({quoted(bookmarks)}): "
            "ignored, every stream starts from start_date (or from the beginning "
            "without one)"
        )
        return {**state, "bookmarks": {}}
    moment = now or datetime.now(timezone.utc)
    checked = {}
    for name, entry in bookmarks.items():
        if not isinstance(entry, dict):
            warn(
                f"The state's bookmark for '{name}' is not an object "
                f"({quoted(entry)}): ignored, the stream starts from start_date (or "
                "from the beginning without one)"
            )
            continue
        checked[name] = _checked_stream(name, entry, warn, moment)
    return {**state, "bookmarks": checked}


def state_object(state: object, warn: Callable[[str], None]) -> dict[str, t.Any]:
    """``state`` if it is an object (a JSON object), else an empty one and a warning."""
    if isinstance(state, dict):
        return state
    warn(
        f"The state is not an object ({quoted(state)}): ignored, every stream "
        "starts from start_date (or from the beginning without one)"
    )
    return {}


def _checked_stream(
    name: str,
    entry: dict[str, t.Any],
    warn: Callable[[str], None],
    now: datetime,
) -> dict[str, t.Any]:
    entry = dict(entry)
    value = entry.get("replication_key_value")
    if value is not None:
        bookmark = _bookmark(value)
        if bookmark is None:
            warn(
                f"The state's bookmark for '{name}' ({quoted(value)}) is not a time "
                "as the tap writes one: ignored, the stream starts from start_date "
                "(or from the beginning without one)"
            )
            for key in ("replication_key", "replication_key_value", EMITTED_KEY):
                entry.pop(key, None)
        elif bookmark > now:
            warn(
                f"The state's bookmark for '{name}' ({value}) is in the future: "
                "kept as it is, the stream emits nothing until then (set a new state "
                "to read it again)"
            )
    emitted = entry.get(EMITTED_KEY)
    if emitted is not None and not (
        isinstance(emitted, dict) and all(isinstance(v, str) for v in emitted.values())
    ):
        warn(
            f"The state's record versions near the bookmark for '{name}' "
            f"({quoted(emitted)}) are malformed: ignored, the records of the "
            "lookback are emitted again"
        )
        entry.pop(EMITTED_KEY)
    markers = entry.get("progress_markers")
    if markers is not None and not isinstance(markers, dict):
        warn(
            f"The state's progress markers for '{name}' ({quoted(markers)}) are "
            "not an object: ignored (they are not resumable anyway)"
        )
        entry.pop("progress_markers")
    partitions = entry.get("partitions")
    if partitions is not None and not (
        isinstance(partitions, list)
        and all(
            isinstance(p, dict) and isinstance(p.get("context"), dict)
            for p in partitions
        )
    ):
        warn(
            f"The state's partitions for '{name}' ({quoted(partitions)}) are "
            "malformed: ignored, each part of the stream starts from start_date "
            "(or from the beginning without one)"
        )
        entry.pop("partitions")
    return entry


def _bookmark(value: object) -> datetime | None:
    """The time a bookmark holds; None unless it is text with a time and an offset."""
    if not isinstance(value, str):
        return None
    try:
        moment = parse_time(value, naive_tz=timezone.utc)
    except NormalizationError:
        return None
    return moment
