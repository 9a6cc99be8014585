"""The SDK's standard tap tests, against the fake Smartflo.

The fake starts at import: the suite syncs before function fixtures run.
"""

from __future__ import annotations

import tempfile

from singer_sdk.testing import SuiteConfig, get_tap_test_class

from fake_smartflo import FakeSmartflo
from tap_smartflo.tap import TapSmartflo
from tests.configs import base_config
from tests.running import catalog_selecting, discovered_catalog

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
# Some contacts deleted, so that the suite's test of contacts.deleted_at has values
# to check (with none, it passes with a warning, having checked nothing).
for contact_id in list(API.store)[:3]:
    API.soft_delete(contact_id)

#: Where call_recordings (which the suite selects with every stream) archives.
ARCHIVE = tempfile.TemporaryDirectory(prefix="tap-smartflo-core-")

TestTapSmartflo = get_tap_test_class(
    TapSmartflo,
    config=base_config(
        API.url,
        start_date="2024-01-01T00:00:00Z",
        recordings_archive_url=f"file://{ARCHIVE.name}",
    ),
    suite_config=SuiteConfig(max_records_limit=1000),
    # Every stream, call_recordings (off unless selected) included: the suite
    # selects each stream only after the tap has set its stream maps up.
    catalog=catalog_selecting(
        s["tap_stream_id"] for s in discovered_catalog()["streams"]
    ),
    parse_env_config=False,
)
