"""DND lists and their numbers, scheduled callbacks, and each user's details.

Their data, the changes tests make between runs, and their endpoints with the quirks
``shared/smartflo-api.md`` describes:

- ``GET /v1/broadcast/dnd/lists``: keyset pages after ``cursor`` (the last id read),
  ``sort_dir`` asc or desc, ``limit`` capped at 100, filters ``name`` and
  ``updated_after`` (naive, read in ``naive_tz``, exclusive); the envelope says
  ``hasMore`` in camelCase; times with ``+0530``. ``ignore_dnd_updated_after``
  serves a server that ignores the filter;
- ``GET /v1/broadcast/dnd/leads``: keyset pages after ``last_seen_id`` (24-hex ids,
  compared as text), filters ``list_id`` and ``id``; ``ignore_dnd_last_seen_id``
  serves a server that ignores the key (every page is the first);
- ``GET /v1/dialer/schedule_call``: ``from_date`` and ``to_date`` are required
  (naive ``Y-m-d H:i:s``, IST, inclusive, on ``schedule_date_time``) and span at
  most ``callback_window_days``; otherwise a 422 with ``{"ok": false, ...}``.
  ``schedule_date_time`` and ``call_end_time`` are naive IST, ``created_at`` and
  ``updated_at`` like ``2025-01-22T03:03:49.000Z``. ``ignore_callback_dates``
  serves a server that returns every callback whatever the dates;
- ``GET /v1/user/{user_id}``: ``{"data": {...}}``; an unknown id (or one in
  ``broken_user_details``) answers ``user_details_error_status`` with an error body.
"""

from __future__ import annotations

import random
import typing as t
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from typing_extensions import override

from fake_smartflo.data import IST, UTC
from fake_smartflo.endpoints import Endpoints
from fake_smartflo.render import CALL_DATE_FORMAT, render_time

if t.TYPE_CHECKING:
    from fake_smartflo.data import User
    from fake_smartflo.endpoints import Body, Params, Route

#: The most records a DND page holds (the documented 1 to 100).
DND_PAGE_CAP = 100
DND_LISTS_PATH = "/v1/broadcast/dnd/lists"
DND_LEADS_PATH = "/v1/broadcast/dnd/leads"
CALLBACKS_PATH = "/v1/dialer/schedule_call"
USER_DETAILS_PATH = "/v1/user/{user_id}"
#: Callbacks: 0 pending, 1 in progress, 2 done.
PENDING, IN_PROGRESS, DONE = 0, 1, 2


@dataclass(frozen=True)
class Answer:
    """A route's answer with a status of its own (routes otherwise answer 200)."""

    status: int
    body: Body


@dataclass
class DndList:
    """A list of numbers not to call."""

    id: int
    name: str
    description: str | None
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None


@dataclass
class DndLead:
    """A number on a DND list."""

    id: str
    list_id: int
    number: str
    type: str
    added_by: int
    created_at: datetime


@dataclass
class Callback:
    """A callback scheduled by an agent or the dialer."""

    id: int
    agent_id: int
    customer_number: str
    status: int
    campaign_id: int | None
    inbound_queue: int | None
    assigned_to: int | None
    scheduled_at: datetime
    call_end_time: datetime | None
    created_at: datetime
    updated_at: datetime


def _naive_ist(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(IST).strftime(CALL_DATE_FORMAT)


def _zulu_ms(moment: datetime) -> str:
    """``2025-01-22T03:03:49.000Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def render_dnd_list(item: DndList) -> dict[str, object]:
    """The JSON object the API sends for a DND list (times with ``+0530``)."""
    return {
        "id": item.id,
        "name": item.name,
        "description": item.description,
        "created_at": render_time(item.created_at, ist=True),
        "updated_at": render_time(item.updated_at, ist=True),
        "deleted_at": render_time(item.deleted_at, ist=True),
    }


def render_dnd_lead(lead: DndLead) -> dict[str, object]:
    """The JSON object the API sends for a number on a DND list."""
    return {
        "id": lead.id,
        "list_id": lead.list_id,
        "added_by": lead.added_by,
        "number": lead.number,
        "type": lead.type,
        "created_at": render_time(lead.created_at, ist=True),
    }


def render_callback(callback: Callback) -> dict[str, object]:
    """The JSON object the API sends for a scheduled callback."""
    return {
        "id": callback.id,
        "agent_id": callback.agent_id,
        "customer_number": callback.customer_number,
        "status": callback.status,
        "campaign_id": callback.campaign_id,
        "inbound_queue": callback.inbound_queue,
        "assigned_to": callback.assigned_to,
        "schedule_date_time": _naive_ist(callback.scheduled_at),
        "call_end_time": _naive_ist(callback.call_end_time),
        "created_at": _zulu_ms(callback.created_at),
        "updated_at": _zulu_ms(callback.updated_at),
    }


def render_user_details(user: User) -> dict[str, object]:
    """What ``GET /v1/user/{id}`` holds under ``data`` for ``user``."""
    agent = None
    if user.agent_id is not None:
        agent = {
            "id": user.agent_id,
            "intercom": str(user.extension),
            "extension": user.extension,
            "time_group": None if user.id % 2 else "Office hours",
            "failover_destination": None if user.id % 3 else "+919800000002",
        }
    return {
        "id": user.id,
        "name": user.name,
        "number": f"+9198{user.id:08d}",
        "team_member": {
            "email": f"user{user.id}@example.com",
            "login_id": f"user{user.id}@example.com",
            "designation": "Team lead" if user.role_id == 1 else "Agent",
            "status": 1,
            "role": "Agent",
        },
        "agent": agent,
    }


@dataclass
class MoreEndpoints(Endpoints):
    """The account's DND lists and numbers, scheduled callbacks and user details."""

    dnd_lists: int = 0
    dnd_leads_per_list: int = 0
    #: Callbacks scheduled at random whole minutes in [now - callback_history,
    #: now + callback_ahead]; those in the past are mostly done.
    callbacks: int = 0
    callback_history: timedelta = timedelta(days=60)
    callback_ahead: timedelta = timedelta(days=20)
    #: The widest from_date/to_date range the server accepts.
    callback_window_days: int = 31
    #: A server that ignores from_date/to_date (once both are given).
    ignore_callback_dates: bool = False
    ignore_dnd_updated_after: bool = False
    ignore_dnd_last_seen_id: bool = False
    #: Users whose details answer an error (as an unknown id does).
    broken_user_details: frozenset[int] = frozenset()
    user_details_error_status: int = 404
    dnd_list_store: dict[int, DndList] = field(default_factory=dict, init=False)
    dnd_lead_store: dict[str, DndLead] = field(default_factory=dict, init=False)
    callback_store: dict[int, Callback] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        """Seed the data (with a generator of its own: the rest stays as it was)."""
        super().__post_init__()
        self.more_rng = random.Random(self.seed + 2)  # noqa: S311 (test data)
        for _ in range(self.dnd_lists):
            list_id = self.add_dnd_list()
            self.add_dnd_leads(list_id, self.dnd_leads_per_list)
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        self.schedule_callbacks(
            self.callbacks,
            between=(now - self.callback_history, now + self.callback_ahead),
        )

    @override
    def routes(self) -> dict[tuple[str, str], Route]:
        """The other endpoints', and these."""
        routes = super().routes()
        routes["GET", DND_LISTS_PATH] = self.list_dnd_lists
        routes["GET", DND_LEADS_PATH] = self.list_dnd_leads
        routes["GET", CALLBACKS_PATH] = self.list_scheduled_callbacks
        routes["GET", USER_DETAILS_PATH] = self.user_details
        return routes

    # Changes

    def add_dnd_list(self) -> int:
        """Add a DND list (updated on the server's clock); return its id."""
        with self.lock:
            list_id = 801 + len(self.dnd_list_store)
            moment = self.tick(self.more_rng.randint(1, 30))
            self.dnd_list_store[list_id] = DndList(
                id=list_id,
                name=f"DND {list_id}",
                description=self.more_rng.choice([None, "Asked not to be called"]),
                created_at=moment,
                updated_at=moment,
            )
        return list_id

    def rename_dnd_list(self, list_id: int, name: str) -> None:
        """Rename a DND list (its ``updated_at`` becomes the server's clock)."""
        with self.lock:
            item = self.dnd_list_store[list_id]
            item.name = name
            item.updated_at = self.tick(5)

    def soft_delete_dnd_list(self, list_id: int) -> None:
        """Soft-delete a DND list: it is still listed, with ``deleted_at``."""
        with self.lock:
            item = self.dnd_list_store[list_id]
            item.updated_at = item.deleted_at = self.tick(5)

    def add_dnd_leads(self, list_id: int, count: int) -> list[str]:
        """Put ``count`` numbers on the DND list ``list_id``."""
        rng = self.more_rng
        ids = []
        with self.lock:
            for _ in range(count):
                lead = DndLead(
                    id=f"{rng.getrandbits(96):024x}",
                    list_id=list_id,
                    number=f"+9199{rng.randint(0, 10**8):08d}",
                    type=rng.choice(["manual", "upload"]),
                    added_by=7001,
                    created_at=self.tick(rng.randint(1, 30)),
                )
                self.dnd_lead_store[lead.id] = lead
                ids.append(lead.id)
        return ids

    def remove_dnd_lead(self, lead_id: str) -> None:
        """Take a number off its DND list: the API stops returning it."""
        with self.lock:
            del self.dnd_lead_store[lead_id]

    def schedule_callbacks(
        self,
        count: int,
        *,
        between: tuple[datetime, datetime],
        pending: bool = False,
    ) -> list[int]:
        """Schedule ``count`` callbacks at random whole minutes in ``between``.

        Those due more than an hour ago are mostly done (some never made), unless
        ``pending``: then none is done yet.
        """
        rng = self.more_rng
        low, high = between
        minutes = int((high - low).total_seconds() // 60)
        now = datetime.now(UTC).replace(microsecond=0)
        ids = []
        with self.lock:
            for _ in range(count):
                at = low + timedelta(minutes=rng.randint(0, minutes))
                callback_id = 52001 + len(self.callback_store)
                created = min(at, now) - timedelta(days=rng.randint(0, 5), seconds=7)
                made = (
                    at < now - timedelta(hours=1)
                    and rng.random() < 0.8  # noqa: PLR2004
                    and not pending
                )
                self.callback_store[callback_id] = Callback(
                    id=callback_id,
                    agent_id=rng.choice([370701, 370702, 370703]),
                    customer_number=f"+9198{rng.randint(0, 10**8):08d}",
                    status=DONE if made else PENDING,
                    campaign_id=rng.choice([None, 901, 902]),
                    inbound_queue=rng.choice([None, 21930]),
                    assigned_to=rng.choice([None, 370701]),
                    scheduled_at=at,
                    call_end_time=at + timedelta(minutes=3) if made else None,
                    created_at=created,
                    updated_at=at + timedelta(minutes=3) if made else created,
                )
                ids.append(callback_id)
        return ids

    def make_callback(self, callback_id: int, *, status: int = DONE) -> None:
        """An agent makes the callback (or starts it: ``IN_PROGRESS``) now."""
        now = datetime.now(UTC).replace(microsecond=0)
        with self.lock:
            callback = self.callback_store[callback_id]
            callback.status = status
            callback.call_end_time = now if status == DONE else None
            callback.updated_at = now

    # Endpoints

    def list_dnd_lists(self, params: Params) -> Body:
        """``GET /v1/broadcast/dnd/lists``: keyset pages after ``cursor``."""
        limit = min(int(params.get("limit", self.default_limit)), DND_PAGE_CAP)
        descending = params.get("sort_dir") == "desc"
        with self.lock:
            rows = sorted(
                self.dnd_list_store.values(), key=lambda r: r.id, reverse=descending
            )
        if "updated_after" in params and not self.ignore_dnd_updated_after:
            after = self.parse_query_time(params["updated_after"])
            rows = [r for r in rows if r.updated_at > after]
        if "name" in params:
            rows = [r for r in rows if r.name == params["name"]]
        if "cursor" in params:
            cursor = int(params["cursor"])
            rows = [r for r in rows if (r.id < cursor if descending else r.id > cursor)]
        chunk = rows[:limit]
        return {
            "hasMore": len(rows) > limit,
            "limit": limit,
            "count": len(chunk),
            "data": [render_dnd_list(r) for r in chunk],
        }

    def list_dnd_leads(self, params: Params) -> Body:
        """``GET /v1/broadcast/dnd/leads``: keyset pages after ``last_seen_id``."""
        limit = min(int(params.get("limit", self.default_limit)), DND_PAGE_CAP)
        with self.lock:
            rows = sorted(self.dnd_lead_store.values(), key=lambda r: r.id)
        if "list_id" in params:
            rows = [r for r in rows if str(r.list_id) == params["list_id"]]
        if "id" in params:
            rows = [r for r in rows if r.id == params["id"]]
        if "last_seen_id" in params and not self.ignore_dnd_last_seen_id:
            rows = [r for r in rows if r.id > params["last_seen_id"]]
        chunk = rows[:limit]
        return {
            "hasMore": len(rows) > limit,
            "count": len(chunk),
            "limit": limit,
            "data": [render_dnd_lead(r) for r in chunk],
        }

    def list_scheduled_callbacks(self, params: Params) -> Body:
        """``GET /v1/dialer/schedule_call``: the callbacks due in a range."""
        if not params.get("from_date") or not params.get("to_date"):
            message = "The from date and to date fields are required."
            return Answer(422, {"ok": False, "message": message})
        low = datetime.strptime(params["from_date"], CALL_DATE_FORMAT)  # noqa: DTZ007
        high = datetime.strptime(params["to_date"], CALL_DATE_FORMAT)  # noqa: DTZ007
        if high - low > timedelta(days=self.callback_window_days):
            message = (
                f"The date range may not be more than {self.callback_window_days} days."
            )
            return Answer(422, {"ok": False, "message": message})
        low, high = low.replace(tzinfo=IST), high.replace(tzinfo=IST)
        with self.lock:
            rows = sorted(self.callback_store.values(), key=lambda c: c.scheduled_at)
        due = [
            render_callback(c)
            for c in rows
            if self.ignore_callback_dates or low <= c.scheduled_at <= high
        ]
        return {"ok": True, "message": "Scheduled calls", "data": due}

    def user_details(self, params: Params) -> Body:
        """``GET /v1/user/{user_id}``: one user's details, or an error."""
        raw = params["user_id"]
        user_id = int(raw) if raw.isdigit() else None
        with self.lock:
            user = self.user_store.get(user_id or 0)
        if user is None or user_id in self.broken_user_details:
            message = f"No user found with id {raw}"
            return Answer(
                self.user_details_error_status, {"success": False, "message": message}
            )
        return {"data": render_user_details(user)}
