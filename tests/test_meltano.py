"""The Meltano path a user takes: install offline, run, run again incrementally."""

from __future__ import annotations

import json
import shutil
import typing as t
from datetime import datetime, timedelta

import yaml

from fake_smartflo import TOKEN, FakeSmartflo
from scripts.plugin_settings import HUB_YML, about, expected_settings
from tests.configs import FAKE_ACCOUNT_ENV, REPO

if t.TYPE_CHECKING:
    from pathlib import Path

    from tests.meltano_runner import Meltano, RequestRecorder

STATE_ID = "dev:tap-smartflo-to-target-jsonl"


def lookback() -> timedelta:
    """The lookback meltano.yml gives the extractor."""
    project = yaml.safe_load((REPO / "meltano.yml").read_text())
    extractors = project["plugins"]["extractors"]
    (extractor,) = (e for e in extractors if e["name"] == "tap-smartflo")
    (setting,) = (s for s in extractor["settings"] if s["name"] == "lookback_minutes")
    return timedelta(minutes=setting["value"])


def jsonl_records(folder: Path, stream: str = "contacts") -> list[dict[str, t.Any]]:
    """The records of ``stream`` target-jsonl wrote, in file order."""
    lines = (folder / f"{stream}.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def jsonl_ids(folder: Path, stream: str = "contacts") -> list[t.Any]:
    """The ids of ``stream`` target-jsonl wrote, in file order."""
    return [record["id"] for record in jsonl_records(folder, stream)]


def bookmark(state: dict[str, t.Any]) -> datetime:
    value = state["singer_state"]["bookmarks"]["contacts"]["replication_key_value"]
    return datetime.fromisoformat(value)


def test_install_asks_meltano_hub_nothing(meltano_installed, watchdog: RequestRecorder):
    # Every plugin is a complete definition: the (unreachable) Hub is never asked,
    # and with usage statistics off nothing is sent to the collector either.
    assert meltano_installed.install_requests == []
    assert watchdog.requests == []
    for plugin in ("extractors/tap-smartflo", "loaders/target-jsonl"):
        assert (meltano_installed.sys_dir / plugin / "venv" / "bin").is_dir(), plugin
    for plugin in ("loaders/target-postgres", "loaders/target-duckdb", "utilities/dbt"):
        assert (meltano_installed.sys_dir / plugin / "venv").is_dir(), plugin


def test_run_writes_every_contact_then_the_schedule_writes_the_changes(
    meltano: Meltano, tmp_path: Path, watchdog: RequestRecorder
):
    output = tmp_path / "output"
    with FakeSmartflo(
        contacts=1200,
        contact_groups=3,
        departments=2,
        ivrs=1,
        numbers=2,
        broadcast_lists=2,
        leads_per_list=2,
        broadcasts=3,
        dialer_campaigns=1,
    ) as api:
        env = {
            "TAP_SMARTFLO_API_URL": api.url,
            "TAP_SMARTFLO_API_TOKEN": TOKEN,
            **FAKE_ACCOUNT_ENV,
        }
        meltano.ok("run", "tap-smartflo", "target-jsonl", **env)
        first = jsonl_ids(output)
        assert sorted(first) == sorted(api.store)
        assert len(first) == len(set(first))
        # The account's reference and campaign data, each stream in its file.
        assert sorted(jsonl_ids(output, "departments")) == sorted(api.department_store)
        assert jsonl_ids(output, "ivrs") == list(api.ivr_store)
        assert jsonl_ids(output, "my_numbers") == [str(i) for i in api.number_store]
        assert jsonl_ids(output, "broadcast_lists") == list(api.list_store)
        assert len(jsonl_ids(output, "broadcast_leads")) == 4
        assert sorted(jsonl_ids(output, "broadcasts")) == sorted(api.broadcast_store)
        assert jsonl_ids(output, "dialer_campaigns") == ["901"]
        saved = meltano.state(STATE_ID)
        assert bookmark(saved) == api.newest_updated_at

        changed, deleted, added = api.change_some_contacts()
        # A group owner adds a column in Smartflo and fills it for one contact:
        # Meltano discovers again before the next run, which loads it as a column.
        contact = api.store[changed[0]]
        group = api.group_store[contact.contact_group_id]
        api.touch_group(group.id, field_map=[*group.field_map, "Loan Tenure"])
        tenure = {"name": "Loan Tenure", "value": 36}
        api.touch(contact.id, custom_fields=[*contact.custom_fields, tenure])
        api.requests.clear()
        # The schedule runs the job; the job shares the state of the plain run.
        meltano.ok("schedule", "run", "smartflo-to-jsonl-hourly", **env)

    records = jsonl_records(output)
    assert all("cf_loan_tenure" not in record for record in records[: len(first)])
    by_id = {record["id"]: record for record in records[len(first) :]}
    assert by_id[changed[0]]["cf_loan_tenure"] == "36"
    assert {"name": "Loan Tenure", "value": "36"} in by_id[changed[0]]["custom_fields"]
    assert by_id[changed[1]]["cf_loan_tenure"] is None
    second = jsonl_ids(output)[len(first) :]
    old, window = bookmark(saved), lookback()
    # Only the changes: the lookback window is re-read, not re-emitted.
    assert sorted(second) == sorted({*changed, deleted, *added})
    # Meltano discovered again first: every group (no updated_after), one page.
    groups = [r.params for r in api.requests_to("/v1/contact/groups")]
    assert groups[0] == {"limit": "100", "page": "1"}
    sent = {r.params.get("updated_after") for r in api.requests_to("/v1/contacts")}
    asked = old - window - timedelta(seconds=1)
    assert sent == {asked.strftime("%Y-%m-%d %H:%M:%S")}
    assert bookmark(meltano.state(STATE_ID)) == api.newest_updated_at
    assert watchdog.requests == []


def test_the_limit_learned_in_one_run_is_remembered_by_meltanos_state(
    meltano: Meltano,
):
    # Contacts only, small pages: requests enough for the first run to find the
    # limit (3 a second, untold: the ramp of 2, then 3, a second meets it by the
    # 6th of 12 pages), and a second run that starts at its share.
    with FakeSmartflo(
        contacts=120, rate_limit=3, naive_tz=FakeSmartflo.base_time.tzinfo
    ) as api:
        env = {
            "TAP_SMARTFLO_API_URL": api.url,
            "TAP_SMARTFLO_API_TOKEN": TOKEN,
            "TAP_SMARTFLO_PAGE_SIZE": "10",
            "TAP_SMARTFLO__SELECT": json.dumps(["contacts.*"]),
        }
        meltano.ok("run", "tap-smartflo", "target-jsonl", **env)
        learned = meltano.state(STATE_ID)["singer_state"]["account"]
        assert learned["requests_per_second"] in {2, 3}  # see test_pacing
        api.requests.clear()
        meltano.ok("run", "tap-smartflo", "target-jsonl", **env)
    assert api.requests_to("/v1/contacts")
    assert [r.status for r in api.requests] == [200] * len(api.requests)
    assert meltano.state(STATE_ID)["singer_state"]["account"] == learned


def test_hub_definition_adds_the_extractor_to_a_new_project(
    meltano_installed: Meltano, tmp_path: Path
):
    project = tmp_path / "project"
    project.mkdir()
    (project / "meltano.yml").write_text(
        "default_environment: dev\nenvironments:\n- name: dev\n"
        "send_anonymous_usage_stats: false\n"
    )
    meltano = meltano_installed.with_database(tmp_path / "new.db")
    meltano.ok(
        "add",
        "--plugin-type=extractor",
        "tap-smartflo",
        f"--from-ref={HUB_YML}",
        "--no-install",
        cwd=project,
    )
    added = yaml.safe_load((project / "meltano.yml").read_text())
    (extractor,) = added["plugins"]["extractors"]
    assert extractor["variant"] == "smartflo-community"
    assert extractor["settings_group_validation"] == [
        ["api_token"],
        ["email", "password"],
    ]
    wanted = expected_settings(about())
    assert {s["name"] for s in extractor["settings"]} == {s["name"] for s in wanted}
    sensitive = {s["name"] for s in extractor["settings"] if s.get("sensitive")}
    assert sensitive == {s["name"] for s in wanted if s.get("sensitive")}
    assert "api_token" in sensitive


class ContactsOnlyAccount(FakeSmartflo):
    """An account whose token may read contacts only: 403 everywhere else."""

    def routes(self) -> dict[tuple[str, str], object]:
        return {("GET", "/v1/contacts"): self.list_contacts}


def test_a_forbidden_stream_is_skipped_and_the_rest_is_loaded(
    meltano: Meltano, tmp_path: Path
):
    with ContactsOnlyAccount(contacts=50) as api:
        env = {
            "TAP_SMARTFLO_API_URL": api.url,
            "TAP_SMARTFLO_API_TOKEN": TOKEN,
            **FAKE_ACCOUNT_ENV,
        }
        partial = meltano.ok("run", "tap-smartflo", "target-jsonl", **env)
        assert "Skipping stream 'call_records'" in partial.stderr
        assert "HTTP 403" in partial.stderr
        assert sorted(jsonl_ids(tmp_path / "output")) == sorted(api.store)
        shutil.rmtree(tmp_path / "output", ignore_errors=True)
        # The remedy docs/operating.md gives for the warnings, as Meltano's
        # variable for `select`.
        selected = meltano.ok(
            "run", "tap-smartflo", "target-jsonl", "--full-refresh",
            TAP_SMARTFLO__SELECT=json.dumps(["contacts.*"]), **env,
        )  # fmt: skip
        assert "Skipping stream" not in selected.stderr
    assert sorted(jsonl_ids(tmp_path / "output")) == sorted(api.store)
    assert sorted(p.name for p in (tmp_path / "output").iterdir()) == ["contacts.jsonl"]


def test_meltano_config_test_passes_after_one_request(meltano: Meltano):
    # Meltano's test runs the extractor until its first record: contacts go first.
    with FakeSmartflo(contacts=30, calls=20) as api:
        env = {
            "TAP_SMARTFLO_API_URL": api.url,
            "TAP_SMARTFLO_API_TOKEN": TOKEN,
            **FAKE_ACCOUNT_ENV,
        }
        done = meltano.ok("config", "test", "tap-smartflo", **env)
        wrong = meltano("config", "test", "tap-smartflo", **env | {
            "TAP_SMARTFLO_API_TOKEN": "not-the-token-value"
        })  # fmt: skip
    assert "Plugin configuration is valid" in done.stdout + done.stderr
    # Meltano discovers first (one request, for contacts' custom-field columns),
    # then the run stops at the first record.
    assert [r.path for r in api.requests][:2] == ["/v1/contact/groups", "/v1/contacts"]
    assert len(api.requests_to("/v1/call/records")) == 0
    assert wrong.returncode != 0
    said = wrong.stdout + wrong.stderr
    assert "refused the credentials" in said
    assert "not-the-token-value" not in said


def test_meltano_discovers_before_every_run_whatever_the_pip_url(
    meltano_installed: Meltano, tmp_path: Path
):
    # Meltano reuses the catalog of a tap installed from a package (a pip_url
    # without -e) until its config changes, so a label added in Smartflo would never
    # become a column: the extractor (which the accounts inherit) and the Hub
    # definition (as Meltano Hub's lockfile of it) turn the cache off.
    meltano = meltano_installed.with_database(tmp_path / "extras.db")
    listed = meltano.ok("config", "list", "--extras", "--all", "tap-smartflo")
    (line,) = (x for x in listed.stdout.splitlines() if "_use_cached_catalog" in x)
    assert "current value: False (from `meltano.yml`)" in line, line
    project = tmp_path / "project"
    (project / "plugins" / "extractors").mkdir(parents=True)
    (project / "meltano.yml").write_text(
        "default_environment: dev\nenvironments:\n- name: dev\n"
        "send_anonymous_usage_stats: false\nplugins:\n  extractors:\n"
        "  - name: tap-smartflo\n    variant: smartflo-community\n"
    )
    locked = {"plugin_type": "extractors", **yaml.safe_load(HUB_YML.read_text())}
    lockfile = "tap-smartflo--smartflo-community.lock"
    (project / "plugins" / "extractors" / lockfile).write_text(json.dumps(locked))
    listed = meltano.ok(
        "config", "list", "--extras", "--all", "tap-smartflo", cwd=project
    )
    (line,) = (x for x in listed.stdout.splitlines() if "_use_cached_catalog" in x)
    assert "current value: False (default)" in line, line
