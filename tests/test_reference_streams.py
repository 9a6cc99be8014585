"""Departments, IVRs, the account's numbers and dialer campaigns: one request each,
one type per field whatever the API sends."""

from __future__ import annotations

from fake_smartflo import FakeSmartflo
from tests.configs import STREAM_PATHS, base_config

REFERENCE = ("departments", "ivrs", "my_numbers", "dialer_campaigns")


def test_reference_endpoints_cost_one_request_each_without_paging_parameters(tap):
    with FakeSmartflo(
        departments=6, ivrs=3, numbers=4, dialer_campaigns=3, ids_as_strings="mixed"
    ) as api:
        run = tap(base_config(api.url), streams=REFERENCE)
    assert run.returncode == 0, run.stderr
    for stream in REFERENCE:
        (request,) = api.requests_to(STREAM_PATHS[stream])
        # Nothing that could page or filter: an endpoint that honoured an unknown
        # limit would silently cut the list short.
        assert request.params == {}, stream
        assert run.schema_errors(stream) == [], stream
    assert {r.path for r in api.requests} == {STREAM_PATHS[s] for s in REFERENCE}


def test_department_ids_and_counters_are_integers_and_flags_booleans(tap):
    with FakeSmartflo(departments=6) as api:
        run = tap(base_config(api.url), streams=["departments"])
    by_id = {r["id"]: r for r in run.records("departments")}
    assert sorted(by_id) == sorted(api.department_store)  # "21930" arrives as text
    for department in api.department_store.values():
        record = by_id[department.id]
        assert record["calls_answered"] == department.calls_answered
        assert record["agent_count"] == len(department.agents)
        assert record["queue_timeout"] == 60
        assert record["use_as_queue"] is department.use_as_queue
        # An unset sticky agent arrives as PHP's [] (its empty object): null.
        if department.sticky_agent:
            assert record["sticky_agent"] == {
                "enabled": True,
                "time_period": "24",
                "format": "hours",
            }
        else:
            assert record["sticky_agent"] is None
        assert record["transcription"]["enabled"] is False
        assert [a["id"] for a in record["agents"]] == [a for a, _ in department.agents]
        assert record["timeout_destination"] == "12"
    assert {r["missed_call_sms_id"] for r in by_id.values()} == {None, "77"}


def test_ivr_recordings_are_integers_whichever_way_each_arrives(tap):
    with FakeSmartflo(ivrs=3, ids_as_strings="mixed") as api:
        run = tap(base_config(api.url), streams=["ivrs"])
    records = run.records("ivrs")
    assert [r["id"] for r in records] == sorted(api.ivr_store)
    for record in records:
        ivr = api.ivr_store[record["id"]]
        # "recording" arrives as a numeric string, "invalid_recording" as a number.
        assert record["recording"] == ivr.recording
        assert record["invalid_recording"] == ivr.invalid_recording
        menu = record["ivr_menu"]
        # Options arrive as text or numbers, destinations as numbers: all text.
        assert [m["option"] for m in menu] == ["1", "2", "9"]
        assert [m["destination_id"] for m in menu] == ["21930", str(ivr.id), None]
        assert record["added_by"] == 7001


def test_numbers_and_dialer_campaigns_keep_their_ids_as_text(tap):
    with FakeSmartflo(numbers=3, dialer_campaigns=2) as api:
        run = tap(base_config(api.url), streams=["my_numbers", "dialer_campaigns"])
    numbers = run.records("my_numbers")
    assert [n["id"] for n in numbers] == ["1", "2", "3"]
    assert [n["did"] for n in numbers] == [n.did for n in api.number_store.values()]
    assert [n["alias"] for n in numbers] == [None, "Line 2", None]
    campaigns = run.records("dialer_campaigns")
    assert campaigns == [
        {"id": "901", "name": "Campaign 1"},
        {"id": "902", "name": "Campaign 2"},
    ]
