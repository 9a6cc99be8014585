"""Normalization without HTTP: times to UTC RFC 3339, ids to one type."""

from __future__ import annotations

import pytest

from tap_smartflo.normalize import (
    NormalizationError,
    RecordNormalizer,
    to_int,
    to_utc_rfc3339,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2024-05-08T12:45:03+0000", "2024-05-08T12:45:03+00:00"),
        ("2024-05-08T12:45:03+00:00", "2024-05-08T12:45:03+00:00"),
        ("2024-05-08T17:44:10+0530", "2024-05-08T12:14:10+00:00"),
        ("2025-01-22T03:03:49.000Z", "2025-01-22T03:03:49+00:00"),
        ("2025-01-22T03:03:49.250Z", "2025-01-22T03:03:49.250000+00:00"),
        ("2024-05-08 17:44:10", "2024-05-08T12:14:10+00:00"),  # naive = IST
        ("08-05-2024 17:44:10", "2024-05-08T12:14:10+00:00"),
        (1715172250, "2024-05-08T12:44:10+00:00"),
        ("1715172250", "2024-05-08T12:44:10+00:00"),
        (None, None),
        ("", None),
        ("0000-00-00 00:00:00", None),
    ],
)
def test_times_become_utc_rfc3339(raw, expected):
    assert to_utc_rfc3339(raw) == expected


@pytest.mark.parametrize("raw", ["yesterday", "2024-13-45T00:00:00Z", True, [1]])
def test_unreadable_times_are_errors_not_guesses(raw):
    with pytest.raises(NormalizationError):
        to_utc_rfc3339(raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(59848243, 59848243), ("59848243", 59848243), (" 7 ", 7), (7.0, 7), (None, None)],
)
def test_ids_become_integers(raw, expected):
    assert to_int(raw) == expected
    assert to_int(raw).__class__ is expected.__class__


@pytest.mark.parametrize("raw", ["abc", "1.5", 1.5, True, {}])
def test_non_numeric_ids_are_errors(raw):
    with pytest.raises(NormalizationError):
        to_int(raw)


def test_record_is_projected_onto_the_schema_with_the_failing_field_named():
    schema = {
        "properties": {
            "id": {"type": "integer"},
            "at": {"type": ["string", "null"], "format": "date-time"},
            "tags": {"type": ["array", "null"], "items": {"type": "string"}},
        }
    }
    normalize = RecordNormalizer(schema)
    raw = {"id": "5", "at": "2024-05-08T12:45:03+0000", "tags": [1, "a"], "new": 1}
    assert normalize(raw) == {
        "id": 5,
        "at": "2024-05-08T12:45:03+00:00",
        "tags": ["1", "a"],
    }
    assert normalize.unknown_seen == {"new"}
    with pytest.raises(NormalizationError, match="field 'at'"):
        normalize({"id": 1, "at": "soon"})
