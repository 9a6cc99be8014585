"""A fake Smartflo API for development: a real threaded HTTP server on 127.0.0.1.

It serves what ``shared/smartflo-api.md`` documents, with the quirks the tap must
survive switched on by attributes, faults to inject, token expiry, and a request log
(``requests``) that tests assert on. Tests, ``scripts/demo`` and the benchmarks use
it; it is not part of the tap's package.

One module per job:

- ``data``: the seeded records, and the changes tests make between runs
  (``add_contacts``, ``touch``, ``soft_delete``, ``add_groups``, ``touch_group``,
  ``add_calls``, ``add_call``, ``touch_call``, ``add_users``, ``add_departments``,
  ``remove_department``, ``add_broadcast_list``, ``add_broadcasts``);
  ``custom_labels`` (``MIXED_LABELS``) gives groups custom labels that overlap, are
  one field in other spellings, or are in Hindi and Tamil, and contacts values for
  them;
- ``render``: how the API writes records (zones, time formats, ids as text);
- ``endpoints``: query parameters, pages and each endpoint's quirks, and the GET
  paths that change a broadcast (recorded in ``broadcast_actions``);
- ``more``: DND lists and their numbers, scheduled callbacks and user details,
  their changes (``rename_dnd_list``, ``remove_dnd_lead``, ``schedule_callbacks``,
  ``make_callback``) and endpoints (keyset ``cursor``/``last_seen_id`` pages with
  ``hasMore``, required date windows of at most 31 days, a 4xx for an unknown user);
- ``logins``: accepted tokens, their expiry, and ``POST /v1/auth/login``;
- ``faults``: injected failures and the account's rate limit;
- ``recordings``: the audio behind ``recording_url`` (links that expire, downloads
  cut short, ``downloads`` logged);
- ``server``: the HTTP server, the request log, and ``FakeSmartflo``, which
  puts them together.

Serve it by hand with ``python -m fake_smartflo --contacts 5000``.
"""

from fake_smartflo.data import (
    IST,
    MIXED_LABELS,
    SAMPLE_ACCOUNT,
    UTC,
    CallRecord,
    Contact,
    ContactGroup,
    User,
)
from fake_smartflo.faults import FAULT_KINDS, LOGIN_THROTTLED, REFUSED, Fault
from fake_smartflo.logins import TOKEN
from fake_smartflo.server import FakeSmartflo, LocalServer, LoggedRequest

__all__ = [
    "FAULT_KINDS",
    "IST",
    "LOGIN_THROTTLED",
    "MIXED_LABELS",
    "REFUSED",
    "SAMPLE_ACCOUNT",
    "TOKEN",
    "UTC",
    "CallRecord",
    "Contact",
    "ContactGroup",
    "FakeSmartflo",
    "Fault",
    "LocalServer",
    "LoggedRequest",
    "User",
]
