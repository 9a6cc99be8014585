"""Custom fields as columns, end to end: discovery, sync, catalogs, stream maps."""

from __future__ import annotations

import json
import time
import typing as t

import pytest

from fake_smartflo import MIXED_LABELS, TOKEN, FakeSmartflo
from scripts.catalog import deselect_properties, select_streams
from tap_smartflo import discovery
from tests.configs import EMAIL, PASSWORD, base_config, login_config
from tests.labels import MIXED_COLUMNS, as_text, expected_columns

if t.TYPE_CHECKING:
    from tests.messages import TapRun

GROUPS = "/v1/contact/groups"
COLUMNS = MIXED_COLUMNS
#: Contacts in three groups whose field maps overlap, collide and are not Latin.
MIXED = {"contacts": 60, "contact_groups": 3, "custom_labels": MIXED_LABELS}
MIXED_LABELS_ONLY = {"custom_labels": MIXED_LABELS}


def contacts_properties(catalog: dict[str, t.Any]) -> dict[str, t.Any]:
    entry = next(s for s in catalog["streams"] if s["tap_stream_id"] == "contacts")
    return t.cast("dict[str, t.Any]", entry["schema"]["properties"])


def custom_columns(catalog: dict[str, t.Any]) -> list[str]:
    return sorted(name for name in contacts_properties(catalog) if name[:3] == "cf_")


def lines_about_custom_fields(run: TapRun) -> list[str]:
    return [line for line in run.stderr.splitlines() if "custom" in line.lower()]


def test_discovery_adds_a_column_per_custom_label_from_every_page_of_groups(tap):
    with FakeSmartflo(contacts=0, contact_groups=150, **MIXED_LABELS_ONLY) as api:
        last = api.group_store[max(api.group_store)]
        api.touch_group(last.id, field_map=[*last.field_map, "Loan Tenure"])
        run = tap(base_config(api.url, page_size=10), args=["--discover"])
    assert run.returncode == 0, run.stderr
    catalog = json.loads(run.stdout)
    # One column per distinct field; "Email ID" is the standard email_id.
    assert custom_columns(catalog) == sorted([*COLUMNS, "cf_loan_tenure"])
    properties = contacts_properties(catalog)
    assert "custom_fields" in properties  # nothing is lost
    loan = properties["cf_loan_amount"]
    assert loan["type"] == ["string", "null"]
    assert loan["title"] == "LOAN AMOUNT"
    assert "'Loan Amount'" in loan["description"]
    assert properties["cf_ktn_tokai__1045767a"]["title"] == "கடன் தொகை"
    # One request per page of 100 groups, whatever page_size says.
    pages = [r.params for r in api.requests_to(GROUPS)]
    assert pages == [{"limit": "100", "page": "1"}, {"limit": "100", "page": "2"}]
    (line,) = lines_about_custom_fields(run)
    assert "7 for contacts, from 150 contact groups (2 requests" in line


def test_records_fill_the_columns_as_text_and_keep_custom_fields(tap):
    # A plain pipe (no catalog): the tap discovers in-process, logged in once.
    with FakeSmartflo(**MIXED, logins={EMAIL: PASSWORD}) as api:
        run = tap(login_config(api.url, start_date="2024-01-01T00:00:00Z"))
    assert run.returncode == 0, run.stderr
    records = {r["id"]: r for r in run.records()}
    assert records.keys() == api.store.keys()
    values = set()
    for contact in api.store.values():
        record = records[contact.id]
        columns = {k: v for k, v in record.items() if k.startswith("cf_")}
        assert columns == expected_columns(contact), contact.id
        assert record["custom_fields"] == [
            {"name": pair["name"], "value": as_text(pair["value"])}
            for pair in contact.custom_fields
        ]
        values.update(columns.values())
    assert {None, "250000", "1.5", "2.5 lakh", ""} <= values
    assert run.schema_errors("contacts") == []
    # Discovery's one request (limit 100, no filter), then the stream's own.
    discovering, _syncing = api.requests_to(GROUPS)
    assert discovering.params == {"limit": "100", "page": "1"}
    assert len(api.requests_to("/v1/auth/login")) == 1
    assert "(and 1 login, 1 discovery request)" in run.stderr
    assert "no column in the catalog" not in run.stderr


def test_a_label_added_after_discovery_stays_in_custom_fields_and_is_named_once(tap):
    with FakeSmartflo(**MIXED) as api:
        config = base_config(api.url)
        discovered = json.loads(tap(config, args=["--discover"]).stdout)
        # A group owner adds a column in Smartflo (a typo of an existing one).
        group = api.group_store[39663]
        api.touch_group(group.id, field_map=[*group.field_map, "Branch."])
        members = [c for c in api.store.values() if c.contact_group_id == group.id]
        for contact in members[:3]:
            pairs = [*contact.custom_fields, {"name": "Branch.", "value": 7}]
            api.touch(contact.id, custom_fields=pairs)
        api.requests.clear()
        run = tap(config, catalog=select_streams(discovered, ["contacts"]))
        sent = list(api.requests)
        rediscovered = json.loads(tap(config, args=["--discover"]).stdout)
    assert run.returncode == 0, run.stderr
    # With a catalog the sync asks the API for contacts only: no discovery.
    assert {r.path for r in sent} == {"/v1/contacts"}
    assert run.schema()["schema"]["properties"].keys() == (
        contacts_properties(discovered).keys()
    )
    new_column = "cf_branch__f1b2c86e"
    by_id = {r["id"]: r for r in run.records()}
    for contact in members[:3]:
        record = by_id[contact.id]
        assert {"name": "Branch.", "value": "7"} in record["custom_fields"]
        assert new_column not in record
    notices = [line for line in run.stderr.splitlines() if "'Branch.'" in line]
    assert len(notices) == 1
    assert f"'Branch.' ({new_column})" in notices[0]
    # The next discovery adds the column; every other column keeps its name.
    assert custom_columns(rediscovered) == sorted([*COLUMNS, new_column])


def test_property_selection_and_stream_maps_apply_to_custom_columns(tap):
    maps = {"contacts": {"cf_branch": "__NULL__", "loan": "cf_loan_amount"}}
    with FakeSmartflo(**MIXED) as api:
        config = base_config(api.url, stream_maps=maps)
        catalog = json.loads(tap(config, args=["--discover"]).stdout)
        deselect_properties(catalog, "contacts", ["cf_rn_rasi__d2a76d8c"])
        run = tap(config, catalog=select_streams(catalog, ["contacts"]))
    assert run.returncode == 0, run.stderr
    announced = run.schema()["schema"]["properties"]
    assert "cf_rn_rasi__d2a76d8c" not in announced
    assert "cf_branch" not in announced
    assert announced["loan"]["type"] == ["string", "null"]
    by_id = {r["id"]: r for r in run.records()}
    for contact in api.store.values():
        record, expected = by_id[contact.id], expected_columns(contact)
        assert "cf_rn_rasi__d2a76d8c" not in record
        assert "cf_branch" not in record
        assert record["loan"] == record["cf_loan_amount"] == expected["cf_loan_amount"]
        assert record["cf_ktn_tokai__1045767a"] == expected["cf_ktn_tokai__1045767a"]
    assert run.schema_errors("contacts") == []


@pytest.mark.parametrize(
    ("settings", "why"),
    [
        ({}, "No credentials"),
        (
            {"api_token": TOKEN, "custom_fields_as_columns": False},
            "custom_fields_as_columns is false",
        ),
    ],
    ids=["no credentials", "setting off"],
)
def test_discovery_without_credentials_or_switched_off_asks_nothing(tap, settings, why):
    with FakeSmartflo(**MIXED) as api:
        run = tap({"api_url": api.url, **settings}, args=["--discover"])
    assert run.returncode == 0, run.stderr
    assert custom_columns(json.loads(run.stdout)) == []
    assert "custom_fields" in contacts_properties(json.loads(run.stdout))
    assert api.requests == []
    (line,) = lines_about_custom_fields(run)
    assert why in line


def test_discovery_refused_by_the_api_says_why_in_one_line(tap):
    # Refused credentials end the discovery as they would end a sync (issue #25):
    # a catalog silently without its columns would hide the cause.
    with FakeSmartflo(**MIXED) as api:
        run = tap(
            base_config(api.url, api_token="wrong-token-1234"), args=["--discover"]
        )
    assert run.returncode == 1, run.stderr
    assert run.stdout == ""
    errors = [line for line in run.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1, errors
    assert "HTTP 401 on /v1/contact/groups" in errors[0]
    assert "check that api_token is valid" in errors[0]
    assert "Traceback" not in run.stderr
    assert len(api.requests) == 1
    assert "wrong-token-1234" not in run.stderr


def test_discovery_of_an_unreachable_api_gives_up_within_its_own_budget(
    tap, monkeypatch
):
    # retry_max_seconds stays 300: discovery keeps to its own, shorter budget.
    monkeypatch.setattr(discovery, "DISCOVERY_RETRY_SECONDS", 1.0)
    monkeypatch.setattr(discovery, "DISCOVERY_TIMEOUT_SECONDS", 0.2)
    with FakeSmartflo(
        **MIXED, fault_rate=1.0, fault_kinds=("hang",), hang_seconds=2
    ) as api:
        started = time.monotonic()
        run = tap(base_config(api.url, retry_initial_seconds=0.05), args=["--discover"])
        took = time.monotonic() - started
    assert run.returncode == 0, run.stderr
    assert took < 3
    assert len(api.requests_to(GROUPS)) > 1  # retried, within the budget
    assert custom_columns(json.loads(run.stdout)) == []
    (line,) = lines_about_custom_fields(run)
    assert "kept failing" in line
    assert "the next discovery tries again" in line
    assert "retry" not in run.stderr.replace("tries again", "")


def test_a_catalog_that_retypes_a_property_gets_the_type_the_records_have(tap):
    # Meltano's `schema` extra (or a hand-edited catalog) may retype a property:
    # the records are still what the API sent, so the SCHEMA says what they are,
    # and one line says which declared type was not applied.
    with FakeSmartflo(**MIXED) as api:
        config = base_config(api.url, start_date="2024-01-01T00:00:00Z")
        catalog = json.loads(tap(config, args=["--discover"]).stdout)
        properties = contacts_properties(catalog)
        properties["cf_loan_amount"] = {"type": ["number", "null"]}
        properties["name"] = {"type": ["integer", "null"]}
        # The same type said another way is no retyping.
        properties["address"] = {"anyOf": [{"type": "string"}, {"type": "null"}]}
        run = tap(config, catalog=select_streams(catalog, ["contacts"]))
    assert run.returncode == 0, run.stderr
    announced = run.schema("contacts")["schema"]["properties"]
    assert announced["cf_loan_amount"]["type"] == ["string", "null"]
    assert announced["name"]["type"] == ["string", "null"]
    assert "2.5 lakh" in {r["cf_loan_amount"] for r in run.records()}
    assert run.schema_errors("contacts") == []
    (line,) = [line for line in run.stderr.splitlines() if "retypes" in line]
    assert "contacts.cf_loan_amount (number)" in line
    assert "contacts.name (integer)" in line
    assert "address" not in line
    assert "stream map" in line
