"""Broadcasts, their lists and each list's leads: pages, Mongo dates, JSON in text,
and what happens when a list's leads cannot be read."""

from __future__ import annotations

from datetime import datetime

from fake_smartflo import REFUSED, FakeSmartflo, Fault
from tests.configs import FAST_RETRIES, base_config

LISTS, LEADS, BROADCASTS = (
    "/v1/broadcast/lists",
    "/v1/broadcast/leads/",
    "/v2/broadcasts",
)
OUTBOUND = ("broadcast_lists", "broadcast_leads", "broadcasts")


def leads_requests(api: FakeSmartflo) -> list[str]:
    return [r.path for r in api.requests if r.path.startswith(LEADS)]


def test_broadcasts_are_read_100_a_page_with_their_epoch_seconds_in_utc(tap):
    with FakeSmartflo(broadcasts=250) as api:
        # One page at a time: read-ahead may otherwise ask for a page past the end.
        config = base_config(api.url, page_size=500, max_concurrent_requests=1)
        run = tap(config, streams=["broadcasts"])
    assert run.returncode == 0, run.stderr
    pages = [(r.params["page"], r.params["limit"]) for r in api.requests_to(BROADCASTS)]
    assert pages == [("1", "100"), ("2", "100"), ("3", "100")]
    records = run.records("broadcasts")
    assert sorted(r["id"] for r in records) == sorted(api.broadcast_store)
    assert run.schema_errors("broadcasts") == []
    for record in records:
        broadcast = api.broadcast_store[record["id"]]
        # Epoch seconds (a number, or its digits) leave as UTC RFC 3339.
        assert record["start_date_time"] == broadcast.start.isoformat()
        assert record["created_at"] == broadcast.created_at.isoformat()
        end = broadcast.end
        assert record["end_date_time"] == (end and end.isoformat())
        # PHP's [] for an unset notification is null; an object stays one.
        assert record["sms_notification"] in (None, {"enabled": False})
        assert type(record["list_id"]) is int
    first = min(records, key=lambda r: r["start_date_time"])
    assert first["start_date_time"] == "2024-05-08T12:00:00+00:00"
    assert {len(r["dialstatus"]) for r in records} == {1, 2, 3}


def test_each_lists_leads_cost_one_request_with_mongo_dates_and_json_as_json(tap):
    with FakeSmartflo(broadcast_lists=3, leads_per_list=4, ids_as_strings=True) as api:
        run = tap(base_config(api.url), streams=OUTBOUND[:2])
    assert run.returncode == 0, run.stderr
    assert len(api.requests_to(LISTS)) == 1
    assert sorted(leads_requests(api)) == [f"{LEADS}{n}" for n in (4401, 4402, 4403)]
    assert all(r.params == {} for r in api.requests)
    assert [r["id"] for r in run.records("broadcast_lists")] == [4401, 4402, 4403]
    leads = {lead.id: lead for leads in api.lead_store.values() for lead in leads}
    records = run.records("broadcast_leads")
    assert sorted(r["id"] for r in records) == sorted(leads)
    assert run.schema_errors("broadcast_leads") == []
    for record in records:
        lead = leads[record["id"]]
        assert record["list_id"] == lead.list_id
        # {"$date": {"$numberLong": "<epoch ms>"}}: the same instant, to the ms.
        assert datetime.fromisoformat(record["created_at"]) == lead.created_at
        assert datetime.fromisoformat(record["updated_at"]) == lead.updated_at
        assert record["created_at"].endswith("+00:00")
        assert record["header"] == ["Phone Number", "Name"]
        assert record["sensitive_field_map"] == {"field_0": True}
        assert record["field_0"] == lead.phone
        assert record["field_34"] == ""
        assert record["call_count"] == lead.call_count
    # One state for the stream, not one per list.
    assert "partitions" not in run.final_state["bookmarks"]["broadcast_leads"]


def test_leads_are_read_even_when_their_lists_are_not_selected(tap):
    with FakeSmartflo(broadcast_lists=2, leads_per_list=3) as api:
        run = tap(base_config(api.url), streams=["broadcast_leads"])
    assert run.returncode == 0, run.stderr
    assert len(run.records("broadcast_leads")) == 6
    emitted = {m["stream"] for m in run.messages if m["type"] in {"SCHEMA", "RECORD"}}
    assert emitted == {"broadcast_leads"}


def test_a_list_whose_leads_answer_an_error_fails_the_run_after_the_rest(tap):
    with FakeSmartflo(
        broadcast_lists=3,
        leads_per_list=2,
        broadcasts=5,
        broken_leads_lists=frozenset({4402}),
    ) as api:
        run = tap(base_config(api.url, **FAST_RETRIES), streams=OUTBOUND)
    # Read once (an error object is an answer, not a fault to retry), then on.
    assert leads_requests(api).count(f"{LEADS}4402") == 1
    lists = {r["list_id"] for r in run.records("broadcast_leads")}
    assert lists == {4401, 4403}
    assert len(run.records("broadcasts")) == 5
    assert run.final_state["bookmarks"]["broadcasts"]
    # Said when it happens, and again as the run's last line: the run failed.
    said = [line for line in run.stderr.splitlines() if "Invalid list id 4402" in line]
    assert len(said) == 2, run.stderr
    assert all("list_id 4402" in line for line in said)
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    assert said[-1] == run.stderr.splitlines()[-1]


def test_a_list_refused_after_others_were_read_is_a_gap_not_a_lost_stream(tap):
    with FakeSmartflo(broadcast_lists=3, leads_per_list=2) as api:
        api.faults.append(Fault(REFUSED, f"{LEADS}4402"))
        run = tap(base_config(api.url), streams=OUTBOUND[:2])
    assert run.returncode == 1
    assert {r["list_id"] for r in run.records("broadcast_leads")} == {4401, 4403}
    last = run.stderr.splitlines()[-1]
    assert "the records of list_id 4402 were not read" in last
    assert "HTTP 403 on /v1/broadcast/leads/4402" in last
    assert "Skipping stream" not in run.stderr


class NoLeadsAccount(FakeSmartflo):
    """A token that may read broadcast lists but not their leads: 403 there."""

    def routes(self):
        return {
            key: route
            for key, route in super().routes().items()
            if not key[1].startswith(LEADS)
        }


def test_leads_refused_from_the_first_list_are_skipped_once_not_per_list(tap):
    with NoLeadsAccount(broadcast_lists=4, leads_per_list=2) as api:
        run = tap(base_config(api.url), streams=OUTBOUND[:2])
    assert run.returncode == 0, run.stderr
    assert leads_requests(api) == [f"{LEADS}4401"]
    assert len(run.records("broadcast_lists")) == 4
    skipped = [line for line in run.stderr.splitlines() if "Skipping stream" in line]
    assert len(skipped) == 1
    assert "'broadcast_leads'" in skipped[0]
    assert "HTTP 403" in skipped[0]


def test_an_account_without_broadcasts_or_the_dialer_skips_those_streams(tap):
    streams = ["departments", *OUTBOUND, "dialer_campaigns"]
    with FakeSmartflo(
        departments=2, broadcast_lists=2, leads_per_list=2, broadcasts=3
    ) as api:
        config = base_config(api.url)
        first = tap(config, streams=streams)
        api.features_off = frozenset({"broadcast", "dialer"})
        api.requests.clear()
        refused = tap(config, streams=streams)
        lost = tap(config, streams=streams, state=first.final_state)
    assert first.returncode == 0, first.stderr
    # Never extracted before: skipped with a warning each, leads never asked for.
    assert refused.returncode == 0, refused.stderr
    for stream in (*OUTBOUND, "dialer_campaigns"):
        assert f"Skipping stream '{stream}'" in refused.stderr
    assert len(refused.records("departments")) == 2
    assert not leads_requests(api)
    # Extracted by an earlier run: the token lost access, and the run says so.
    assert lost.returncode == 1
    assert len(lost.records("departments")) == 2
    for stream in (*OUTBOUND, "dialer_campaigns"):
        assert f"Stream '{stream}' was extracted before" in lost.stderr
