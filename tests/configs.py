"""The fake account as the tests tell it to the tap: configs, logins, stream paths."""

from __future__ import annotations

import re
import typing as t
from pathlib import Path

from fake_smartflo import TOKEN

REPO = Path(__file__).resolve().parent.parent
#: Retries that wait next to nothing, with a budget no passing test comes near.
FAST_RETRIES = {"retry_initial_seconds": 0.01, "retry_max_seconds": 30}
#: A made-up token the fake refuses (no real credential is in the tests).
REFUSED_TOKEN = "fake-refused-token-not-a-secret"
#: A panel login, for ``FakeSmartflo(logins={EMAIL: PASSWORD})`` to accept.
EMAIL, PASSWORD = "ops@example.com", "s3cret-Pa55word-value"
#: Each stream and the path it reads, in the tap's order; the documented read
#: paths, and the only ones a run may touch (``{list_id}``: each list's, a number).
STREAM_PATHS = {
    "contacts": "/v1/contacts",
    "contact_groups": "/v1/contact/groups",
    "users": "/v1/users",
    "user_details": "/v1/user/{user_id}",
    "departments": "/v1/departments",
    "ivrs": "/v1/ivrs",
    "my_numbers": "/v1/my_number",
    "broadcast_lists": "/v1/broadcast/lists",
    "broadcast_leads": "/v1/broadcast/leads/{list_id}",
    "broadcasts": "/v2/broadcasts",
    "dialer_campaigns": "/v1/dialer/campaign",
    "dnd_lists": "/v1/broadcast/dnd/lists",
    "dnd_leads": "/v1/broadcast/dnd/leads",
    "scheduled_callbacks": "/v1/dialer/schedule_call",
    "call_records": "/v1/call/records",
}


#: Streams with no endpoint of their own: call recordings are downloaded from the
#: links in call records (and off unless selected).
LINKED_STREAMS = ("call_recordings",)


def stream_of(path: str) -> str | None:
    """The stream whose read path ``path`` is (None: no stream's, not a read)."""
    for stream, template in STREAM_PATHS.items():
        pattern = re.sub(r"\\\{\w+\\\}", "[0-9]+", re.escape(template))
        if re.fullmatch(pattern, path):
            return stream
    return None


#: The fake's account, as the tests tell it to the tap: a limit far above what any
#: test sends, all of it the tap's. Tests of the pace itself (test_pacing.py) set
#: their own; without this, each test would spend seconds learning the limit.
FAKE_ACCOUNT = {"account_requests_per_second": 1000, "rate_limit_share": 1}
#: Where the tests' history starts: before the fake's oldest record (its base time
#: is 2024-05-08; its calls are of the last days), so every record is read, without
#: walking call records' and callbacks' windows back to 2015 in every run. Tests
#: of a config without it (all history) say so: ``base_config(url, start_date=None)``.
START_DATE = "2024-01-01T00:00:00Z"
#: The fake's account and START_DATE as Meltano passes them (half the limit is
#: still hundreds a second). Meltano 4.4 cannot pass a decimal setting such as
#: rate_limit_share from the environment (its Decimal fails its own JSON encoder).
FAKE_ACCOUNT_ENV = {
    "TAP_SMARTFLO_ACCOUNT_REQUESTS_PER_SECOND": "1000",
    "TAP_SMARTFLO_START_DATE": START_DATE,
}


def base_config(api_url: str, **settings: t.Any) -> dict[str, t.Any]:
    """A config for the fake server (from START_DATE), plus ``settings``.

    A setting given as None is left out (``start_date=None``: all history).
    """
    config = {
        "api_url": api_url,
        "api_token": TOKEN,
        "start_date": START_DATE,
        **FAKE_ACCOUNT,
        **settings,
    }
    return {name: value for name, value in config.items() if value is not None}


def login_config(api_url: str, **settings: t.Any) -> dict[str, t.Any]:
    """A config that logs in to the fake server with EMAIL and PASSWORD."""
    return {
        "api_url": api_url,
        "email": EMAIL,
        "password": PASSWORD,
        **FAKE_ACCOUNT,
        **settings,
    }
