"""The SDK's standard tap tests, against the fake Smartflo.

The fake starts at import: the suite syncs before function fixtures run.
"""

from __future__ import annotations

import tempfile

import pytest
from singer_sdk.testing import SuiteConfig, get_tap_test_class
from singer_sdk.testing.templates import AttributeTestTemplate

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
# Some contacts, groups and DND lists deleted, so that the suite's tests of their
# deleted_at have values to check (with none, they check nothing, and warn).
for contact_id in list(API.store)[:3]:
    API.soft_delete(contact_id)
for group_id in list(API.group_store)[:2]:
    API.soft_delete_group(group_id)
API.soft_delete_dnd_list(next(iter(API.dnd_list_store)))

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


#: The SDK's attribute checks: one object per kind, run for every attribute.
ATTRIBUTE_CHECKS = [
    check
    for check in (
        getattr(getattr(TestTapSmartflo, name), "__self__", None)
        for name in dir(TestTapSmartflo)
    )
    if isinstance(check, AttributeTestTemplate)
]
assert ATTRIBUTE_CHECKS, "the SDK's attribute checks are no longer found here"


@pytest.fixture(autouse=True)
def _each_attribute_test_reads_its_own_attribute() -> None:
    """Forget the values the previous attribute test read.

    The SDK runs one object per kind of attribute test for every attribute, and
    caches the first attribute's values on it (``non_null_attribute_values`` is a
    ``cached_property``): without this, ``contact_groups.deleted_at`` checks
    whatever attribute its worker happened to test first.
    """
    for check in ATTRIBUTE_CHECKS:
        check.__dict__.pop("non_null_attribute_values", None)
