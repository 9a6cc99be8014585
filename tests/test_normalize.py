"""Normalization without HTTP: times to UTC RFC 3339, ids to one type."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tap_smartflo.normalize import (
    NormalizationError,
    RecordNormalizer,
    date_time_text,
    decoded,
    not_available_as_null,
    to_id_text,
    to_int,
    to_number,
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


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("664f1c2e9b1d8a0012ab34cd", "664f1c2e9b1d8a0012ab34cd"),
        (6000123, "6000123"),
        (6000123.0, "6000123"),
        ("1715235734.129662", "1715235734.129662"),
        (None, None),
    ],
)
def test_ids_that_are_text_stay_text_and_numbers_become_their_digits(raw, expected):
    assert to_id_text(raw) == expected


@pytest.mark.parametrize("raw", [True, {}, [1]])
def test_an_id_that_is_neither_text_nor_number_is_an_error(raw):
    with pytest.raises(NormalizationError):
        to_id_text(raw)


@pytest.mark.parametrize(
    ("raw", "expected"), [("N.A.", None), ("n/a", None), ("12", 12), (7.5, 7.5)]
)
def test_not_available_placeholders_become_null(raw, expected):
    assert not_available_as_null(to_number)(raw) == expected


def test_a_value_that_is_neither_a_number_nor_a_placeholder_is_still_an_error():
    with pytest.raises(NormalizationError):
        not_available_as_null(to_number)("soon")


FREE_FORM = {
    "properties": {
        "blob": {"type": ["object", "null"]},
        "steps": {"type": ["array", "null"], "items": {"type": ["object", "null"]}},
        "labels": {"type": ["array", "null"], "items": {"type": ["string", "null"]}},
    }
}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"a": 1}, {"a": 1}),
        ([], None),  # PHP writes an empty object as []
        ("", None),
        (None, None),
        ("Interested", {"value": "Interested"}),
        ([1, 2], {"value": [1, 2]}),
    ],
)
def test_a_free_form_object_is_always_an_object_or_null(raw, expected):
    assert RecordNormalizer(FREE_FORM)({"blob": raw})["blob"] == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ([{"type": "IVR"}], [{"type": "IVR"}]),
        ({"type": "IVR"}, [{"type": "IVR"}]),  # one object where a list belongs
        (
            {"0": {"n": 0}, "2": {"n": 2}, "10": {"n": 10}},
            [{"n": 0}, {"n": 2}, {"n": 10}],
        ),
        (["start", 2], [{"value": "start"}, {"value": 2}]),
        ([], []),
        ("", None),
    ],
)
def test_a_list_of_free_form_objects_is_always_a_list_of_objects(raw, expected):
    assert RecordNormalizer(FREE_FORM)({"steps": raw})["steps"] == expected


def test_list_items_get_the_items_type():
    assert RecordNormalizer(FREE_FORM)({"labels": ["Sales", 12]})["labels"] == [
        "Sales",
        "12",
    ]


def test_a_derived_field_is_converted_like_any_other():
    schema = {
        "properties": {
            "date": {"type": ["string", "null"]},
            "time": {"type": ["string", "null"]},
            "started_at": {"type": ["string", "null"], "format": "date-time"},
        }
    }

    def started(raw):
        return date_time_text(raw.get("date"), raw.get("time"))

    normalize = RecordNormalizer(schema, derived={"started_at": started})
    record = normalize({"date": "2024-05-09", "time": "11:52:14"})
    assert record == {
        "date": "2024-05-09",
        "time": "11:52:14",
        "started_at": "2024-05-09T06:22:14+00:00",  # IST wall-clock time
    }
    assert normalize({"date": "2024-05-09", "time": None})["started_at"] is None
    assert normalize.unknown_seen == set()
    with pytest.raises(NormalizationError, match="field 'started_at'"):
        normalize({"date": "2024-05-09", "time": "late"})


def test_an_empty_nested_object_from_php_is_null():
    schema = {"properties": {"agent": {"type": ["object", "null"], "properties": {}}}}
    assert RecordNormalizer(schema)({"agent": []}) == {"agent": None}


def test_unknown_fields_are_reported_once_each():
    normalize = RecordNormalizer({"properties": {"id": {"type": "integer"}}})
    normalize({"id": 1, "new": 1})
    assert normalize.newly_unknown() == ["new"]
    normalize({"id": 2, "new": 1, "newer": 2})
    assert normalize.newly_unknown() == ["newer"]
    assert normalize.newly_unknown() == []


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # Broadcast leads: Mongo's extended JSON, epoch milliseconds as text.
        ({"$date": {"$numberLong": "1616099994000"}}, "2021-03-18T20:39:54+00:00"),
        (
            {"$date": {"$numberLong": "1616099994123"}},
            "2021-03-18T20:39:54.123000+00:00",
        ),
        ({"$date": 1616099994000}, "2021-03-18T20:39:54+00:00"),
        ({"$date": "2021-03-18T20:39:54.000Z"}, "2021-03-18T20:39:54+00:00"),
        # Broadcasts: epoch seconds, as a number or as its digits.
        (1716882600, "2024-05-28T07:50:00+00:00"),
        ("1716882600", "2024-05-28T07:50:00+00:00"),
    ],
)
def test_mongo_dates_and_epoch_seconds_become_one_exact_instant(raw, expected):
    assert to_utc_rfc3339(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        {"$date": {"$numberLong": "soon"}},
        {"$date": {"$numberInt": "1"}},
        {"$date": None},
        {"when": 1616099994000},
        {"$date": True},
    ],
)
def test_an_object_that_is_not_a_mongo_date_is_an_error(raw):
    with pytest.raises(NormalizationError):
        to_utc_rfc3339(raw)


JSON_IN_TEXT = {
    "properties": {
        "header": {"type": ["array", "null"], "items": {"type": ["string", "null"]}},
        "field_map": {"type": ["object", "null"]},
    }
}


def leads_normalizer() -> RecordNormalizer:
    return RecordNormalizer(
        JSON_IN_TEXT,
        derived={"header": decoded("header"), "field_map": decoded("field_map")},
    )


@pytest.mark.parametrize(
    ("header", "field_map", "expected_header", "expected_map"),
    [
        (
            '["Phone Number", "Name"]',
            '{"field_0": true, "rate": 1.5}',
            ["Phone Number", "Name"],
            {"field_0": True, "rate": Decimal("1.5")},
        ),
        # Already JSON: kept as it is.
        (["Phone Number"], {"field_0": False}, ["Phone Number"], {"field_0": False}),
        # Empty text and JSON null are no value.
        ("", "null", None, None),
        (None, "  ", None, None),
        # Text that is not JSON is kept, in the field's one type.
        ("Phone Number", "field_0", ["Phone Number"], {"value": "field_0"}),
        # JSON of another type than the field's: the field's type, nothing lost.
        ('"Name"', "[1, 2]", ["Name"], {"value": [1, 2]}),
    ],
)
def test_json_sent_as_text_leaves_as_json_of_the_fields_one_type(
    header, field_map, expected_header, expected_map
):
    record = leads_normalizer()({"header": header, "field_map": field_map})
    assert record == {"header": expected_header, "field_map": expected_map}
