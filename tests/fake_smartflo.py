"""A fake Smartflo API: a real threaded HTTP server on 127.0.0.1.

It serves what ``shared/smartflo-api.md`` documents, with the quirks the tap must
survive switched on by attributes:

- ``page_cap``: the server caps ``limit`` silently and echoes the capped value;
- ``ids_as_strings``: ids arrive as numeric strings ("mixed": every other one);
- times arrive as ``+0000`` or ``+0530`` (the same instant, written either way);
- ``updated_after`` is naive ``Y-m-d H:i:s`` read in ``naive_tz`` (IST, the harsh
  reading), compared exclusively unless ``inclusive_updated_after``;
- ``ignore_page``: every page is page 1 (a broken server);
- ``rate_limit``: the account's requests per second, shared with a steady
  neighbour (``background_rate``) and with bursts of others (``refuse_every``);
- a request log (``requests``, with arrival times) that tests assert on.

Contact groups, call records and users follow their documented shapes, with their
quirks: group times in ``+0530``; contact groups' ``limit`` capped at 100; call
records newest first with ``count``, ``from_date``/``to_date`` read as IST and
inclusive (``exclusive_call_dates`` for the other reading; ``ignore_call_dates``
for a server that does not filter), 24-hex ids (``call_ids``:
"int" or "mixed" for older accounts), numbers as numeric strings, ``"N.A."`` ring
times, PHP's ``[]`` for empty objects and every shape public code has seen in the
nested fields; users in ``last_seen_id`` keyset pages. Calls can arrive while a
window is read (``late_calls_during_read``), and one page of one window can answer
a body without results (``broken_call_page``: its from_date and page).

The data can change between runs (``add_contacts``, ``touch``, ``soft_delete``,
``add_groups``, ``touch_group``, ``add_calls``, ``add_call``, ``touch_call``,
``add_users``). Run it by hand with ``python -m tests.fake_smartflo --contacts 5000``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import socket
import sys
import threading
import time
import typing as t
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from typing_extensions import Self

UTC = timezone.utc
IST = timezone(timedelta(hours=5, minutes=30))
TOKEN = "fake-api-token-0123456789abcdef"
FIRST_NAMES = ("Asha", "Ravi", "Meera", "Arjun", "Priya", "Kiran", "Divya", "Rahul")
GROUPS = ((39663, "dd contact group"), (39664, "Leads"), (39665, "Customers"))
FIELD_MAP = ["Phone Number", "Name", "Email Id", "Address", "Company Name"]
CALL_DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


@dataclass
class LoggedRequest:
    """One request as the server saw it (the Authorization value is not kept)."""

    method: str
    path: str
    params: dict[str, str]
    authorized: bool
    status: int = 0
    fault: str | None = None
    #: When it arrived (time.monotonic()).
    at: float = field(default_factory=time.monotonic)


FAULT_KINDS = (
    "429",  # the documented body, success as a string
    "429-retry-after",  # the same with Retry-After: 1
    "500",
    "502-html",  # a gateway's HTML page
    "503",
    "reset",  # the connection closes with no response
    "hang",  # no response for hang_seconds
    "truncated",  # Content-Length promises more than arrives
    "not-json",  # 200 with an HTML body
    "half-json",  # 200 with a complete HTTP body holding half a JSON document
)
#: A throttled login, as one public client saw it: 429 with a body field
#: ``retry_after`` written as ``Y-m-d H:i:s`` in IST (``login_retry_after`` s on).
LOGIN_THROTTLED = "login-429-retry-after-body"


_TOO_MANY = json.dumps({"success": "false", "message": "Too many requests."}).encode()
_SERVER_ERROR = json.dumps({"success": False, "message": "Server error"}).encode()
#: kind -> (status, body, headers) for the faults that are plain responses.
CANNED_FAULTS: dict[str, tuple[int, bytes, dict[str, str]]] = {
    "429": (429, _TOO_MANY, {}),
    "429-retry-after": (429, _TOO_MANY, {"Retry-After": "1"}),
    "rate-limit": (429, _TOO_MANY, {}),
    "rate-limit-others": (429, _TOO_MANY, {}),
    "500": (500, _SERVER_ERROR, {}),
    "503": (503, _SERVER_ERROR, {}),
    "502-html": (502, b"<html><body>Bad Gateway</body></html>", {}),
    "not-json": (200, b"<html><body>Maintenance</body></html>", {}),
    "half-json": (200, b'{"page": 1, "size": 10, "results": [{', {}),
}


@dataclass
class Fault:
    """One injected failure: ``kind`` from FAULT_KINDS, on ``path`` (any if None)."""

    kind: str
    path: str | None = None


@dataclass
class Contact:
    """A contact as the server stores it; rendered per the server's quirks."""

    id: int
    contact_group_id: int
    contact_group_name: str
    phone_number: str
    name: str
    email_id: str | None
    address: str | None
    company_name: str | None
    custom_fields: list[dict[str, object]]
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None
    ist_offsets: bool = False


@dataclass
class ContactGroup:
    """A contact group as the server stores it (rendered with IST offsets)."""

    id: int
    name: str
    list_id: int | None
    description: str | None
    field_map: list[str]
    added_by: int
    created_by: int
    clone_from_contact: int
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None
    visible_to: list[object] | None = None


@dataclass
class CallRecord:
    """A call detail record; ``shape`` picks which of the API's quirks it shows."""

    id: str | int
    seq: int
    started_at: datetime
    duration: int
    answered: bool
    recording_url: str | None
    shape: int
    agent: str = "Asha"


@dataclass
class User:
    """A user and its agent."""

    id: int
    name: str
    agent_id: str | None
    role_id: int
    extension: int


@dataclass
class FakeSmartflo:
    """The fake API. Use as a context manager, or ``start()`` and ``stop()``."""

    contacts: int = 0
    seed: int = 7
    page_cap: int = 100
    default_limit: int = 10
    ids_as_strings: bool | str = False
    naive_tz: timezone = IST
    inclusive_updated_after: bool = False
    return_deleted: bool = True
    ignore_page: bool = False
    latency: float = 0.0
    tokens: set[str] = field(default_factory=lambda: {TOKEN})
    #: Panel logins (email -> password) for ``POST /v1/auth/login``.
    logins: dict[str, str] = field(default_factory=dict)
    #: Lifetime of a token from a login, in seconds (``expires_in``).
    token_ttl: float = 3600.0
    #: HTTP status of a refused login (the docs do not say; 200 is the harsh case).
    login_failure_status: int = 200
    #: Status for an expired token (401; some gateways answer 403).
    expired_status: int = 401
    #: Faults to inject, in order, into the next requests (see ``Fault``).
    faults: deque[Fault] = field(default_factory=deque)
    #: A storm: each data request fails with this probability, with a random kind.
    fault_rate: float = 0.0
    fault_kinds: tuple[str, ...] = ()
    #: Seconds a "hang" fault holds the connection before closing it.
    hang_seconds: float = 30.0
    #: Rewrites each successful data body (to serve malformed responses).
    body_filter: t.Callable[[dict[str, t.Any]], object] | None = None
    #: The account's limit: requests in any one-second window beyond it get 429.
    rate_limit: float = 0.0
    #: Another integration on the account, steadily using this many of
    #: ``rate_limit``'s requests a second (its requests always take their slot).
    background_rate: float = 0.0
    #: Every Nth request gets the documented 429 whatever the pace (other
    #: integrations bursting); such a refusal takes no slot of ``rate_limit``.
    refuse_every: int = 0
    #: Serve repeated identical requests from a cache (benchmarks: keeps the
    #: server's own JSON work out of the client's measurements).
    cache_bodies: bool = False
    base_time: datetime = datetime(2024, 5, 8, 12, 0, 0, tzinfo=UTC)
    contact_groups: int = 0
    calls: int = 0
    #: Seeded calls start at random in [now - call_history, now - 1 hour].
    call_history: timedelta = timedelta(days=3)
    call_ids: str = "hex"
    exclusive_call_dates: bool = False
    ignore_call_dates: bool = False
    #: The zone the server reads from_date/to_date in (IST, as documented).
    call_dates_tz: timezone = IST
    #: Calls started in the same second come in a new order on every request, as
    #: with LIMIT/OFFSET over a sort that is not unique.
    shuffle_call_ties: bool = False
    late_calls_during_read: int = 0
    broken_call_page: tuple[str, str] | None = None
    users: int = 0
    #: A 401 body that echoes the token it refused (some gateways do).
    echo_token_on_refusal: bool = False
    #: Recording URLs carry this access token in their query string, as Smartflo's do.
    recording_token: str = "rec-0123456789abcdef0123"
    #: Seconds a throttled login (LOGIN_THROTTLED) asks the client to wait.
    login_retry_after: int = 2

    def __post_init__(self) -> None:
        """Seed the data."""
        self.rng = random.Random(self.seed)  # noqa: S311 (test data)
        self.lock = threading.Lock()
        self.requests: list[LoggedRequest] = []
        self.store: dict[int, Contact] = {}
        self._next_id = 59848243
        self.version = 0  # bumped by every change to the data
        self.clock = self.base_time
        self.add_contacts(self.contacts)
        self.seed_more()
        self.server: ThreadingHTTPServer | None = None
        self.token_expiry: dict[str, float] = {}
        self._sorted: tuple[int, list[Contact]] = (-1, [])
        self._accepted: deque[float] = deque()
        self._background_next = float("-inf")
        self._received = 0
        self.body_cache: dict[tuple[object, ...], bytes] = {}
        self.failed_logins = 0
        self.issued_tokens = 0

    def seed_more(self) -> None:
        """Seed contact groups, calls and users."""
        self.group_store: dict[int, ContactGroup] = {}
        self.call_store: dict[str | int, CallRecord] = {}
        self.user_store: dict[int, User] = {}
        self._call_seq = 0
        self.add_groups(self.contact_groups)
        now = datetime.now(UTC).replace(microsecond=0)
        self.add_calls(
            self.calls, between=(now - self.call_history, now - timedelta(hours=1))
        )
        self.add_users(self.users)

    # Data

    def add_contacts(self, count: int) -> list[int]:
        """Add ``count`` contacts, each updated a few seconds after the last."""
        ids = []
        with self.lock:
            self.version += 1
            for _ in range(count):
                contact_id = self._next_id
                self._next_id += self.rng.randint(1, 3)
                group_id, group_name = self.rng.choice(GROUPS)
                self.clock += timedelta(seconds=self.rng.randint(1, 30))
                alternate = self.rng.choice(
                    [None, f"+9198{self.rng.randint(0, 10**8):08d}", 42]
                )
                self.store[contact_id] = Contact(
                    id=contact_id,
                    contact_group_id=group_id,
                    contact_group_name=group_name,
                    phone_number=f"+91xxxxxx{contact_id % 10000:04d}",
                    name=f"{self.rng.choice(FIRST_NAMES)} {contact_id}",
                    email_id=self.rng.choice([None, f"c{contact_id}@example.com"]),
                    address=self.rng.choice([None, "MG Road, Bengaluru"]),
                    company_name=self.rng.choice([None, "Acme Pvt Ltd"]),
                    custom_fields=[
                        {"name": "Alternate Phone Number", "value": alternate}
                    ],
                    created_at=self.clock,
                    updated_at=self.clock,
                    ist_offsets=contact_id % 3 == 0,
                )
                ids.append(contact_id)
        return ids

    def tick(self, seconds: int = 60) -> datetime:
        """Move the server's clock on and return it."""
        self.clock += timedelta(seconds=seconds)
        return self.clock

    def touch(self, contact_id: int, **changes: object) -> None:
        """Update a contact (its ``updated_at`` becomes the server's clock)."""
        with self.lock:
            self.version += 1
            contact = self.store[contact_id]
            for key, value in changes.items():
                setattr(contact, key, value)
            contact.updated_at = self.tick(5)

    def soft_delete(self, contact_id: int) -> None:
        """Soft-delete a contact: ``deleted_at`` and ``updated_at`` become now."""
        with self.lock:
            self.version += 1
            contact = self.store[contact_id]
            contact.updated_at = contact.deleted_at = self.tick(5)

    def add_groups(self, count: int) -> list[int]:
        """Add ``count`` contact groups (the first ones are those contacts name)."""
        ids = []
        with self.lock:
            for _ in range(count):
                index = len(self.group_store)
                if index < len(GROUPS):
                    group_id, name = GROUPS[index]
                else:
                    group_id, name = 39663 + index * 7, f"Group {index}"
                self.clock += timedelta(seconds=self.rng.randint(1, 30))
                custom = self.rng.choice([[], ["Alternate Phone Number"]])
                self.group_store[group_id] = ContactGroup(
                    id=group_id,
                    name=name,
                    list_id=self.rng.choice([None, 1200 + index]),
                    description=self.rng.choice([None, f"{name} from the website"]),
                    field_map=FIELD_MAP + custom,
                    added_by=7001,
                    created_by=7001,
                    clone_from_contact=0,
                    created_at=self.clock,
                    updated_at=self.clock,
                    visible_to=self.rng.choice([None, ["Sales"], ["Sales", 12]]),
                )
                ids.append(group_id)
        return ids

    def touch_group(self, group_id: int, **changes: object) -> None:
        """Update a contact group (its ``updated_at`` becomes the server's clock)."""
        with self.lock:
            group = self.group_store[group_id]
            for key, value in changes.items():
                setattr(group, key, value)
            group.updated_at = self.tick(5)

    def add_calls(
        self, count: int, *, between: tuple[datetime, datetime]
    ) -> list[str | int]:
        """Add ``count`` calls starting at random whole seconds in ``between``."""
        low, high = between
        span = int((high - low).total_seconds())
        moments = [
            low + timedelta(seconds=self.rng.randint(0, span)) for _ in range(count)
        ]
        return [self.add_call(moment) for moment in sorted(moments)]

    def add_call(self, started_at: datetime, **fields: object) -> str | int:
        """Add one call that started at ``started_at``; ``fields`` override."""
        with self.lock:
            self._call_seq += 1
            seq = self._call_seq
            as_int = self.call_ids == "int" or (self.call_ids == "mixed" and seq % 2)
            call_id: str | int = (
                6_000_000 + seq if as_int else f"{self.rng.getrandbits(96):024x}"
            )
            answered = self.rng.random() < 0.7
            call = CallRecord(
                id=call_id,
                seq=seq,
                started_at=started_at,
                duration=self.rng.randint(5, 900),
                answered=answered,
                recording_url=(
                    f"https://recordings.example.com/{seq}.mp3?token="
                    f"{self.recording_token}&expires=1715239334"
                    if answered
                    else None
                ),
                shape=seq % 4,
                agent=self.rng.choice(FIRST_NAMES),
            )
            for key, value in fields.items():
                setattr(call, key, value)
            self.call_store[call.id] = call
        return call.id

    def touch_call(self, call_id: str | int, **changes: object) -> None:
        """Change a call after the fact (a recording_url arriving late)."""
        with self.lock:
            call = self.call_store[call_id]
            for key, value in changes.items():
                setattr(call, key, value)

    def add_users(self, count: int) -> list[int]:
        """Add ``count`` users with increasing ids (some without an agent)."""
        ids = []
        with self.lock:
            next_id = max(self.user_store, default=370700) + 1
            for _ in range(count):
                user_id = next_id
                next_id += self.rng.randint(1, 4)
                self.user_store[user_id] = User(
                    id=user_id,
                    name=f"{self.rng.choice(FIRST_NAMES)} {user_id}",
                    agent_id=None if user_id % 5 == 0 else f"0{user_id}0001",
                    role_id=self.rng.choice([1, 2, 3]),
                    extension=1000 + len(self.user_store),
                )
                ids.append(user_id)
        return ids

    def change_some_contacts(self) -> tuple[list[int], int, list[int]]:
        """An hour later: two contacts changed, one soft-deleted, three added.

        Returns (changed ids, deleted id, added ids).
        """
        self.tick(3600)
        changed = list(self.store)[:2]
        self.touch(changed[0], name="Renamed")
        self.touch(changed[1], email_id="new@example.com")
        deleted = list(self.store)[10]
        self.soft_delete(deleted)
        return changed, deleted, self.add_contacts(3)

    @property
    def newest_updated_at(self) -> datetime:
        """The newest ``updated_at`` in the store."""
        return max(contact.updated_at for contact in self.store.values())

    # Rendering

    def render_id(self, value: int) -> int | str:
        """Write an id the way this server does."""
        if self.ids_as_strings == "mixed":
            return str(value) if value % 2 else value
        return str(value) if self.ids_as_strings else value

    @staticmethod
    def render_time(moment: datetime | None, *, ist: bool) -> str | None:
        """Write a time as ``...+0000`` or, for IST records, ``...+0530``."""
        if moment is None:
            return None
        zone = IST if ist else UTC
        return moment.astimezone(zone).strftime("%Y-%m-%dT%H:%M:%S%z")

    def render_contact(self, contact: Contact) -> dict[str, object]:
        """The JSON object the API sends for ``contact``."""
        ist = contact.ist_offsets
        return {
            "id": self.render_id(contact.id),
            "contact_group_id": self.render_id(contact.contact_group_id),
            "contact_group_name": contact.contact_group_name,
            "phone_number": contact.phone_number,
            "name": contact.name,
            "email_id": contact.email_id,
            "address": contact.address,
            "company_name": contact.company_name,
            "custom_fields": [dict(item) for item in contact.custom_fields],
            "created_at": self.render_time(contact.created_at, ist=ist),
            "updated_at": self.render_time(contact.updated_at, ist=ist),
            "deleted_at": self.render_time(contact.deleted_at, ist=ist),
        }

    def render_group(self, group: ContactGroup) -> dict[str, object]:
        """The JSON object the API sends for ``group`` (times in IST offsets)."""
        return {
            "id": self.render_id(group.id),
            "name": group.name,
            "list_id": None if group.list_id is None else self.render_id(group.list_id),
            "description": group.description,
            "field_map": list(group.field_map),
            "added_by": group.added_by,
            "created_by": group.created_by,
            "clone_from_contact": group.clone_from_contact,
            "created_at": self.render_time(group.created_at, ist=True),
            "updated_at": self.render_time(group.updated_at, ist=True),
            "deleted_at": self.render_time(group.deleted_at, ist=True),
            "visible_to": group.visible_to,
        }

    @staticmethod
    def render_call(call: CallRecord) -> dict[str, object]:
        """The JSON object the API sends for ``call``: IST times, and per ``shape``
        numbers as numeric strings, "N.A.", ``[]`` for empty objects, and each shape
        public code has seen in the nested fields."""
        start = call.started_at.astimezone(IST)
        end = start + timedelta(seconds=call.duration)
        answered = call.duration - 5 if call.answered else 0
        shape = call.shape
        agent = {"name": call.agent, "number": "+919800000001", "status": "answered"}
        notes = [None, "Asked for a callback", [{"note": "VIP", "by": 7001}], []][shape]
        return {
            "id": call.id,
            "call_id": f"{int(call.started_at.timestamp())}.{call.seq:06d}",
            "uuid": f"{call.seq:08x}-4b1e-4c2a-9d3f-000000000000",
            "direction": "inbound" if call.seq % 3 else "outbound",
            "description": "Call answered" if call.answered else "Call missed",
            "detailed_description": f"Handled by {call.agent}",
            "status": "answered" if call.answered else "missed",
            "recording_url": call.recording_url,
            "service": "Cloud Phone",
            "date": start.strftime("%Y-%m-%d"),
            "time": start.strftime("%H:%M:%S"),
            "end_stamp": end.strftime(CALL_DATE_FORMAT),
            "call_duration": str(call.duration) if shape % 2 else call.duration,
            "answered_seconds": str(answered) if shape else answered,
            "minutes_consumed": -(-answered // 60),
            "charges": ["0.50", 1, 0.75, "0"][shape],
            "department_name": ["Sales", None, "Support", "Sales"][shape],
            "agent_number": "+919800000001",
            "agent_name": call.agent,
            "client_number": f"+9198{call.seq:08d}",
            "did_number": "+918000000000",
            "reason": None if call.answered else "Agent not available",
            "hangup_cause": "NORMAL_CLEARING",
            "notes": notes,
            "contact_details": [{"id": call.seq, "name": "Ravi"}, [], None, "Ravi"][
                shape
            ],
            "missed_agents": [[], [{"agent_id": "05001", "name": "Meera"}], [2, 3], []][
                shape
            ],
            "agent_hangup_data": [agent, [agent, agent], None, []][shape],
            "agent_ring_time": str(call.seq % 30) if call.answered else "N.A.",
            "circle": {"operator": "Airtel", "circle": "Karnataka"},
            "call_flow": [
                [{"type": "Init", "time": 1715235734}, {"type": "Agent"}],
                ["start", "connect"],
                [],
                {"0": {"type": "IVR"}, "2": {"type": "Hangup"}},
            ][shape],
            "call_hint": ["hint", None, "urgent", None][shape],
            "lead_id": [None, 501, "L-77", None][shape],
            "dialer_call_details": [None, {"campaign_id": 12}, [], "Campaign 9"][shape],
            "custom_status": [None, {"id": 3, "name": "Interested"}, "Interested", []][
                shape
            ],
        }

    def render_user(self, user: User) -> dict[str, object]:
        """The JSON object the API sends for ``user``."""
        agent = None
        if user.agent_id is not None:
            agent = {
                "id": user.agent_id,
                "name": user.name,
                "status": 1,
                "follow_me_number": "+919800000001",
            }
        return {
            "id": self.render_id(user.id),
            "name": user.name,
            "agent": agent,
            "login_id": f"user{user.id}@example.com",
            "is_login_based_calling_enabled": user.id % 2 == 0,
            "is_international_outbound_enabled": user.id % 2 == 1,
            "user_role": {"id": self.render_id(user.role_id), "name": "Agent"},
            "extension": user.extension,
            "user_status": 1,
        }

    # Endpoints

    def parse_query_time(self, text: str) -> datetime:
        """Read ``updated_after``: naive in ``naive_tz``, ISO offsets as given."""
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            moment = datetime.strptime(text, "%Y-%m-%d %H:%M:%S")  # noqa: DTZ007
        return moment if moment.tzinfo else moment.replace(tzinfo=self.naive_tz)

    def page_params(self, params: dict[str, str]) -> tuple[int, int]:
        """The (page, capped limit) a list endpoint uses."""
        limit = min(int(params.get("limit", self.default_limit)), self.page_cap)
        page = 1 if self.ignore_page else max(int(params.get("page", 1)), 1)
        return page, limit

    def list_contacts(self, params: dict[str, str]) -> dict[str, object]:
        """``GET /v1/contacts``."""
        page, limit = self.page_params(params)
        rows = self.sorted_contacts()
        if "updated_after" in params:
            after = self.parse_query_time(params["updated_after"])
            rows = [
                c
                for c in rows
                if c.updated_at > after
                or (self.inclusive_updated_after and c.updated_at == after)
            ]
        if "contact_group_id" in params:
            rows = [
                c for c in rows if str(c.contact_group_id) == params["contact_group_id"]
            ]
        if "contact_id" in params:
            rows = [c for c in rows if str(c.id) == params["contact_id"]]
        if not self.return_deleted:
            rows = [c for c in rows if c.deleted_at is None]
        chunk = rows[(page - 1) * limit : page * limit]
        return {
            "page": page,
            "size": len(chunk),
            "limit": limit,
            "results": [self.render_contact(c) for c in chunk],
        }

    def list_contact_groups(self, params: dict[str, str]) -> dict[str, object]:
        """``GET /v1/contact/groups`` (``limit`` is documented 1 to 100)."""
        page, limit = self.page_params(params)
        limit = min(limit, 100)
        with self.lock:
            rows = sorted(self.group_store.values(), key=lambda group: group.id)
        if "updated_after" in params:
            after = self.parse_query_time(params["updated_after"])
            rows = [g for g in rows if g.updated_at > after]
        if "contact_group_id" in params:
            rows = [g for g in rows if str(g.id) == params["contact_group_id"]]
        chunk = rows[(page - 1) * limit : page * limit]
        return {
            "page": page,
            "size": len(chunk),
            "limit": limit,
            "results": [self.render_group(g) for g in chunk],
        }

    def list_call_records(self, params: dict[str, str]) -> dict[str, object]:
        """``GET /v1/call/records``: newest first, with ``count``."""
        page, limit = self.page_params(params)
        asked = (params.get("from_date", ""), params.get("page", "1"))
        if asked == self.broken_call_page:
            return {"success": False, "message": "Something went wrong"}
        with self.lock:
            rows = list(self.call_store.values())
        low = high = None
        if self.ignore_call_dates:
            params = {k: v for k, v in params.items() if not k.endswith("_date")}
        if "from_date" in params:
            low = datetime.strptime(params["from_date"], CALL_DATE_FORMAT)  # noqa: DTZ007
            low = low.replace(tzinfo=self.call_dates_tz)
            rows = [c for c in rows if self._after(c.started_at, low)]
        if "to_date" in params:
            high = datetime.strptime(params["to_date"], CALL_DATE_FORMAT)  # noqa: DTZ007
            high = high.replace(tzinfo=self.call_dates_tz)
            rows = [c for c in rows if self._after(high, c.started_at)]
        if self.shuffle_call_ties:
            with self.lock:
                ties = {c.seq: self.rng.random() for c in rows}
            rows.sort(key=lambda c: (c.started_at, ties[c.seq]), reverse=True)
        else:
            rows.sort(key=lambda c: (c.started_at, c.seq), reverse=True)
        chunk = rows[(page - 1) * limit : page * limit]
        if page == 1 and chunk and self.late_calls_during_read:
            self._arrive_during_read(chunk[0].started_at, high)
        return {
            "count": len(rows),
            "limit": limit,
            "size": len(chunk),
            "page": page,
            "results": [self.render_call(c) for c in chunk],
        }

    def _after(self, later: datetime, earlier: datetime) -> bool:
        return later > earlier or (not self.exclusive_call_dates and later == earlier)

    def _arrive_during_read(self, newest: datetime, high: datetime | None) -> None:
        """Calls written into the window being read, newer than all it held."""
        count, self.late_calls_during_read = self.late_calls_during_read, 0
        self.late_arrivals = []
        for n in range(1, count + 1):
            moment = newest + timedelta(seconds=n)
            assert high is None or moment < high, "no room for late calls"
            self.late_arrivals.append(self.add_call(moment))

    def list_users(self, params: dict[str, str]) -> dict[str, object]:
        """``GET /v1/users``: keyset pages after ``last_seen_id``."""
        limit = min(int(params.get("limit", self.default_limit)), self.page_cap)
        with self.lock:
            rows = sorted(self.user_store.values(), key=lambda user: user.id)
        if "last_seen_id" in params:
            rows = [u for u in rows if u.id > int(params["last_seen_id"])]
        chunk = rows[:limit]
        last = chunk[-1].id if chunk else params.get("last_seen_id")
        return {
            "has_more": len(rows) > limit,
            "count": len(chunk),
            "last_seen_id": None if last is None else self.render_id(int(last)),
            "data": [self.render_user(u) for u in chunk],
        }

    def sorted_contacts(self) -> list[Contact]:
        """Contacts in id order (sorted once per change of the data)."""
        with self.lock:
            if self._sorted[0] != self.version:
                rows = sorted(self.store.values(), key=lambda contact: contact.id)
                self._sorted = (self.version, rows)
            return self._sorted[1]

    def over_rate_limit(self) -> bool:
        """Whether a request now exceeds the account's requests per second."""
        if not self.rate_limit:
            return False
        now = time.monotonic()
        with self.lock:
            self._background_requests(now)
            while self._accepted and now - self._accepted[0] >= 1.0:
                self._accepted.popleft()
            if len(self._accepted) >= self.rate_limit:
                return True
            self._accepted.append(now)
            return False

    def _background_requests(self, now: float) -> None:
        """The neighbour's requests up to ``now`` take their slots (lock held)."""
        if not self.background_rate:
            return
        # Older ones would leave the window at once: start at most a second back.
        moment = max(self._background_next, now - 1.0)
        while moment <= now:
            self._accepted.append(moment)
            moment += 1 / self.background_rate
        self._background_next = moment

    def refused_for_others(self) -> bool:
        """Whether this request is every ``refuse_every``-th (counts every request)."""
        if not self.refuse_every:
            return False
        with self.lock:
            self._received += 1
            return self._received % self.refuse_every == 0

    def routes(self) -> dict[tuple[str, str], object]:
        """(method, path) -> handler taking the query params, returning a body."""
        return {
            ("GET", "/v1/contacts"): self.list_contacts,
            ("GET", "/v1/contact/groups"): self.list_contact_groups,
            ("GET", "/v1/call/records"): self.list_call_records,
            ("GET", "/v1/users"): self.list_users,
        }

    def token_status(self, header: str | None) -> str:
        """ "ok", "expired" or "invalid"; Bearer tokens and bare tokens both work."""
        if not header:
            return "invalid"
        token = header.removeprefix("Bearer ").strip()
        if token not in self.tokens:
            return "invalid"
        expires = self.token_expiry.get(token)
        return "expired" if expires is not None and time.monotonic() > expires else "ok"

    def login(self, body: bytes) -> tuple[int, dict[str, object]]:
        """``POST /v1/auth/login``: a token for a known email and password."""
        try:
            credentials = json.loads(body or b"{}")
        except ValueError:
            credentials = {}
        email, password = credentials.get("email"), credentials.get("password")
        with self.lock:
            if not email or self.logins.get(email) != password:
                self.failed_logins += 1
                return self.login_failure_status, {
                    "success": False,
                    "message": "The username or password is incorrect.",
                    "login_failed_count": self.failed_logins,
                }
            self.issued_tokens += 1
            token = f"eyJ.login-{self.issued_tokens}.{self.rng.getrandbits(64):x}"
            self.tokens.add(token)
            self.token_expiry[token] = time.monotonic() + self.token_ttl
        return 200, {
            "success": True,
            "access_token": token,
            "token_type": "bearer",
            "expires_in": self.token_ttl,
            "number_of_days_left": 30,
        }

    def next_fault(self, path: str) -> str | None:
        """The fault to inject into this request, if any."""
        with self.lock:
            if self.faults and self.faults[0].path in {None, path}:
                return self.faults.popleft().kind
            if self.fault_rate and self.rng.random() < self.fault_rate:
                return self.rng.choice(self.fault_kinds or FAULT_KINDS)
        return None

    # Server

    @property
    def url(self) -> str:
        """Base URL of the running server."""
        assert self.server is not None, "the fake server is not running"
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self, port: int = 0) -> FakeSmartflo:
        """Start serving on 127.0.0.1 (on a free port unless ``port`` is given)."""
        handler = type("Handler", (_Handler,), {"api": self})
        self.server = _Server(("127.0.0.1", port), handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def __enter__(self) -> Self:
        """Start the server."""
        return self.start()

    def __exit__(self, *exc: object) -> None:
        """Stop the server."""
        self.stop()

    def requests_to(self, path: str) -> list[LoggedRequest]:
        """The logged requests for one path."""
        return [r for r in self.requests if r.path == path]


class _Server(ThreadingHTTPServer):
    """Quiet about clients that hang up (a tap exiting with pages in flight)."""

    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


class _Handler(BaseHTTPRequestHandler):
    """Serves one connection for the FakeSmartflo in ``api``."""

    api: FakeSmartflo
    protocol_version = "HTTP/1.1"
    # Headers and body in one segment: without this, delayed ACKs add ~40 ms
    # to every keep-alive request and the benchmarks measure the kernel.
    disable_nagle_algorithm = True
    wbufsize = 1 << 16

    def log_message(self, *args: object) -> None:
        """Stay quiet."""

    def do_GET(self) -> None:
        self.handle_request("GET")

    def do_POST(self) -> None:
        self.handle_request("POST")

    def handle_request(self, method: str) -> None:
        url = urlparse(self.path)
        params = {k: v[-1] for k, v in parse_qs(url.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        token = self.api.token_status(self.headers.get("Authorization"))
        entry = LoggedRequest(method, url.path, params, token == "ok")
        with self.api.lock:
            self.api.requests.append(entry)
        if self.api.latency:
            time.sleep(self.api.latency)
        if self.api.refused_for_others():
            return self.send_fault(entry, "rate-limit-others")
        if self.api.over_rate_limit():
            return self.send_fault(entry, "rate-limit")
        if fault := self.api.next_fault(url.path):
            return self.send_fault(entry, fault)
        if (method, url.path) == ("POST", "/v1/auth/login"):
            return self.send_json(entry, *self.api.login(body))
        return self.send_route(entry, token)

    def send_route(self, entry: LoggedRequest, token: str) -> None:
        route = self.api.routes().get((entry.method, entry.path))
        if route is None:
            # The API gateway answers unknown paths with 403, not 404.
            return self.send_json(entry, 403, {"message": "Forbidden"})
        if token == "expired":
            return self.send_json(
                entry,
                self.api.expired_status,
                {"success": False, "message": "Token has expired"},
            )
        if token != "ok":
            message = "Unauthenticated."
            if self.api.echo_token_on_refusal:
                presented = str(self.headers.get("Authorization"))
                message = f"Token {presented.removeprefix('Bearer ')} is not valid."
            return self.send_json(entry, 401, {"success": False, "message": message})
        key = (self.api.version, entry.path, tuple(sorted(entry.params.items())))
        if self.api.cache_bodies and key in self.api.body_cache:
            return self.send_raw(entry, 200, self.api.body_cache[key])
        result = route(entry.params)  # type: ignore[operator]
        if self.api.body_filter is not None:
            result = self.api.body_filter(result)
        payload = json.dumps(result).encode()
        if self.api.cache_bodies:
            self.api.body_cache[key] = payload
        return self.send_raw(entry, 200, payload)

    def send_fault(self, entry: LoggedRequest, kind: str) -> None:
        entry.fault = kind
        if kind == LOGIN_THROTTLED:
            until = datetime.now(IST) + timedelta(seconds=self.api.login_retry_after)
            body = {
                "success": False,
                "message": "Too many login attempts.",
                "retry_after": until.strftime(CALL_DATE_FORMAT),
            }
            return self.send_json(entry, 429, body)
        if kind in CANNED_FAULTS:
            status, payload, headers = CANNED_FAULTS[kind]
            return self.send_raw(entry, status, payload, headers)
        if kind == "hang":
            time.sleep(self.api.hang_seconds)
        elif kind == "truncated":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "5000")
            self.end_headers()
            self.wfile.write(b'{"page": 1, "results": [')
            self.wfile.flush()
        # "reset", "hang" and "truncated" end with the connection closed.
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
        return None

    def send_json(
        self,
        entry: LoggedRequest,
        status: int,
        body: object,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_raw(entry, status, json.dumps(body).encode(), headers)

    def send_raw(
        self,
        entry: LoggedRequest,
        status: int,
        payload: bytes,
        headers: dict[str, str] | None = None,
    ) -> None:
        entry.status = status
        self.send_response(status)
        content_type = "application/json" if payload[:1] in b"{[" else "text/html"
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)


def main() -> None:
    """Serve fake data until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1000)
    parser.add_argument("--groups", type=int, default=12)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--users", type=int, default=40)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    api = FakeSmartflo(
        contacts=args.contacts,
        contact_groups=args.groups,
        calls=args.calls,
        users=args.users,
    ).start(args.port)
    print(f"Fake Smartflo API at {api.url} (token {TOKEN})", flush=True)  # noqa: T201
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        api.stop()


if __name__ == "__main__":
    main()
