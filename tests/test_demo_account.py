"""scripts/demo with credentials: it loads the user's account, not the fake.

A module of its own (apart from test_demo.py's one run of the demo), so that a
pytest worker runs it beside that run rather than after it.
"""

from __future__ import annotations

import typing as t

from fake_smartflo import TOKEN, FakeSmartflo
from tests.configs import FAKE_ACCOUNT_ENV
from tests.demo_runs import DEMO_STATE, output_env, printed_state, query, run_demo

if t.TYPE_CHECKING:
    from pathlib import Path

    from tests.meltano_runner import Meltano


def test_demo_with_credentials_loads_the_account_not_the_fake(
    meltano: Meltano, tmp_path: Path
):
    output = tmp_path / "output"
    # A stand-in for the real API, reached through the user's own settings.
    with FakeSmartflo(contacts=40, calls=20, users=3, departments=2) as account:
        done = run_demo(
            meltano,
            TAP_SMARTFLO_API_URL=account.url,
            TAP_SMARTFLO_API_TOKEN=TOKEN,
            **FAKE_ACCOUNT_ENV,  # a user who knows the account's limit
            **output_env(output),
        )
    assert "Credentials found" in done.stdout
    assert "Fake Smartflo API at" not in done.stdout
    assert account.requests_to("/v1/contacts")
    warehouse = output / "warehouse.duckdb"
    ids = query(warehouse, "SELECT id FROM smartflo.contacts ORDER BY id")
    assert [row[0] for row in ids] == sorted(account.store)
    total = query(warehouse, "SELECT sum(calls) FROM analytics.smartflo_calls_daily")
    assert total == [(20,)]
    assert (output / "report.html").is_file()
    saved = printed_state(done.stdout, "State for the next run:")
    assert saved["singer_state"]["bookmarks"]["contacts"]["replication_key_value"]
    assert meltano.state(DEMO_STATE) == {}
