"""The SDK's standard tap tests, against the fake Smartflo.

The fake starts at import: the suite syncs before function fixtures run.
"""

from __future__ import annotations

from singer_sdk.testing import SuiteConfig, get_tap_test_class

from fake_smartflo import FakeSmartflo
from tap_smartflo.tap import TapSmartflo
from tests.configs import base_config

API = FakeSmartflo(
    contacts=400,
    contact_groups=12,
    calls=300,
    users=120,
    departments=4,
    ivrs=3,
    numbers=3,
    broadcast_lists=3,
    leads_per_list=5,
    broadcasts=150,
    dialer_campaigns=2,
    dnd_lists=3,
    dnd_leads_per_list=4,
    callbacks=30,
).start()

TestTapSmartflo = get_tap_test_class(
    TapSmartflo,
    config=base_config(API.url, start_date="2024-01-01T00:00:00Z"),
    suite_config=SuiteConfig(max_records_limit=1000),
    parse_env_config=False,
)
