"""The fake account's data: seeded records, and the changes tests make between runs."""

from __future__ import annotations

import itertools
import random
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

UTC = timezone.utc
#: India Standard Time: how Smartflo writes a time without an offset.
IST = timezone(timedelta(hours=5, minutes=30))

FIRST_NAMES = ("Asha", "Ravi", "Meera", "Arjun", "Priya", "Kiran", "Divya", "Rahul")
GROUPS = ((39663, "dd contact group"), (39664, "Leads"), (39665, "Customers"))
FIELD_MAP = ["Phone Number", "Name", "Email Id", "Address", "Company Name"]
#: Custom labels for the three groups contacts belong to (``custom_labels``): they
#: overlap ("Alternate Phone Number" twice), are one field in other spellings
#: ("Loan Amount", "loan  amount", "LOAN AMOUNT"), differ only in punctuation
#: ("Loan-Amount"), name a standard column ("Email ID"), or are in Hindi and Tamil.
MIXED_LABELS = (
    ("Alternate Phone Number", "Loan Amount", "ऋण राशि"),
    ("loan  amount", "Loan-Amount", "Email ID", "கடன் தொகை"),
    ("LOAN AMOUNT", "Alternate Phone Number", "Branch"),
)
#: What group owners type into custom fields: numbers, text, nothing.
CUSTOM_VALUES: tuple[object, ...] = (None, 250000, "2.5 lakh", 1.5, "Pune", "")
VISIBLE_TO: tuple[list[object] | None, ...] = (None, ["Sales"], ["Sales", 12])
#: The share of calls that were answered (and so have a recording).
ANSWERED = 0.7
DEPARTMENTS = ("Sales", "Support", "Billing", "Renewals", "Escalations")
#: A small account with some of everything, for the demo and for serving by hand.
SAMPLE_ACCOUNT = {
    "contacts": 1000,
    "contact_groups": 12,
    "calls": 500,
    "users": 40,
    "departments": 5,
    "ivrs": 3,
    "numbers": 4,
    "broadcast_lists": 3,
    "leads_per_list": 20,
    "broadcasts": 120,
    "dialer_campaigns": 3,
    "dnd_lists": 3,
    "dnd_leads_per_list": 10,
    "callbacks": 50,
}


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
    #: The department's name as departments list it (None: no department).
    department: str | None = None
    #: The customer's number; None: a number of the call's own.
    client_number: str | None = None
    #: The account's number (DID) the call came in on or went out from.
    did: str = "+918000000000"


def is_inbound(call: CallRecord) -> bool:
    """Whether the customer called (two calls in three), or was called."""
    return bool(call.seq % 3)


def client_number(call: CallRecord) -> str:
    """The customer's number: the call's own, or the one it returned."""
    return call.client_number or f"+9198{call.seq:08d}"


@dataclass
class User:
    """A user and its agent."""

    id: int
    name: str
    agent_id: str | None
    role_id: int
    extension: int


@dataclass
class Department:
    """A department (a queue of agents)."""

    id: int
    name: str
    #: (agent id, agent name) of each agent in it.
    agents: list[tuple[str, str]]
    use_as_queue: bool
    calls_answered: int
    calls_missed: int
    sticky_agent: bool


@dataclass
class Ivr:
    """An IVR and its menu: (option, destination type, destination id) per key."""

    id: int
    name: str
    recording: int
    invalid_recording: int
    menu: list[tuple[str, str, int | None]]


@dataclass
class Number:
    """One of the account's numbers (DIDs)."""

    id: int
    did: str
    alias: str | None
    destination: str


@dataclass
class BroadcastList:
    """A list of leads that broadcasts (outbound campaigns) dial."""

    id: int
    name: str


@dataclass
class Lead:
    """A lead of a broadcast list (stored in MongoDB on Smartflo's side)."""

    id: str
    list_id: int
    phone: str
    name: str
    call_count: int
    created_at: datetime
    updated_at: datetime


@dataclass
class Broadcast:
    """A broadcast: an outbound campaign dialling a list."""

    id: str
    name: str
    list_id: int
    #: 0 scheduled, 1 running, 2 paused, 3 ended (the dangerous GET paths change it).
    status: int
    start: datetime
    end: datetime | None
    created_at: datetime


@dataclass
class DialerCampaign:
    """A dialer campaign."""

    id: int
    name: str


@dataclass
class Dataset:
    """Contacts, contact groups, call records and users, seeded from ``seed``.

    Contacts and groups are updated on the server's own ``clock`` (from
    ``base_time``); seeded calls start in the ``call_history`` before now.
    """

    contacts: int = 0
    seed: int = 7
    base_time: datetime = datetime(2024, 5, 8, 12, 0, 0, tzinfo=UTC)
    contact_groups: int = 0
    calls: int = 0
    #: Seeded calls start at random in [now - call_history, now - 1 hour].
    call_history: timedelta = timedelta(days=3)
    #: "hex" (24 hex digits), "int" (older accounts) or "mixed".
    call_ids: str = "hex"
    users: int = 0
    departments: int = 0
    ivrs: int = 0
    #: The account's numbers (DIDs).
    numbers: int = 0
    broadcast_lists: int = 0
    leads_per_list: int = 0
    broadcasts: int = 0
    dialer_campaigns: int = 0
    #: Custom labels of the first groups (in ``GROUPS`` order), for example
    #: ``MIXED_LABELS``; each contact then carries a value for every custom label of
    #: its group. None: the default data (a group has "Alternate Phone Number" or
    #: no custom label, and every contact a value for it).
    custom_labels: tuple[tuple[str, ...], ...] | None = None
    #: Recording URLs carry this access token in their query string, as Smartflo's do.
    recording_token: str = "rec-0123456789abcdef0123"  # noqa: S105 (made up)

    def __post_init__(self) -> None:
        """Seed the data."""
        self.rng = random.Random(self.seed)  # noqa: S311 (test data)
        self.lock = threading.Lock()
        self.store: dict[int, Contact] = {}
        self.group_store: dict[int, ContactGroup] = {}
        self.call_store: dict[str | int, CallRecord] = {}
        self.user_store: dict[int, User] = {}
        self.department_store: dict[int, Department] = {}
        self.number_store: dict[int, Number] = {}
        self.version = 0  # bumped by every change to the contacts
        self.clock = self.base_time
        self._next_id = 59848243
        self._call_seq = 0
        self._sorted: tuple[int, list[Contact]] = (-1, [])
        self.add_contacts(self.contacts)
        self.add_groups(self.contact_groups)
        now = datetime.now(UTC).replace(microsecond=0)
        self.add_calls(
            self.calls, between=(now - self.call_history, now - timedelta(hours=1))
        )
        self.add_users(self.users)
        self._seed_reference_data()
        self._join_calls_to_the_account()

    def tick(self, seconds: int = 60) -> datetime:
        """Move the server's clock on and return it."""
        self.clock += timedelta(seconds=seconds)
        return self.clock

    # Contacts

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
                custom_fields = self._custom_fields(group_id)
                self.store[contact_id] = Contact(
                    id=contact_id,
                    contact_group_id=group_id,
                    contact_group_name=group_name,
                    phone_number=f"+91xxxxxx{contact_id % 10000:04d}",
                    name=f"{self.rng.choice(FIRST_NAMES)} {contact_id}",
                    email_id=self.rng.choice([None, f"c{contact_id}@example.com"]),
                    address=self.rng.choice([None, "MG Road, Bengaluru"]),
                    company_name=self.rng.choice([None, "Acme Pvt Ltd"]),
                    custom_fields=custom_fields,
                    created_at=self.clock,
                    updated_at=self.clock,
                    ist_offsets=contact_id % 3 == 0,
                )
                ids.append(contact_id)
        return ids

    def _custom_fields(self, group_id: int) -> list[dict[str, object]]:
        """A new contact's custom fields: a value for each custom label of its group."""
        if self.custom_labels is None:
            alternate = self.rng.choice(
                [None, f"+9198{self.rng.randint(0, 10**8):08d}", 42]
            )
            return [{"name": "Alternate Phone Number", "value": alternate}]
        index = [group for group, _ in GROUPS].index(group_id)
        labels = self.custom_labels[index] if index < len(self.custom_labels) else ()
        return [
            {"name": label, "value": self.rng.choice(CUSTOM_VALUES)} for label in labels
        ]

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

    def change_some_contacts(self) -> tuple[list[int], int, list[int]]:
        """An hour later: two contacts changed, one soft-deleted, three added.

        Returns:
            (changed ids, deleted id, added ids).
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

    def sorted_contacts(self) -> list[Contact]:
        """Contacts in id order (sorted once per change of the data)."""
        with self.lock:
            if self._sorted[0] != self.version:
                rows = sorted(self.store.values(), key=lambda contact: contact.id)
                self._sorted = (self.version, rows)
            return self._sorted[1]

    # Contact groups

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
                if self.custom_labels is not None:
                    labels = self.custom_labels[index : index + 1]
                    custom = list(labels[0]) if labels else []
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
                    visible_to=self.rng.choice(VISIBLE_TO),
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

    def soft_delete_group(self, group_id: int) -> None:
        """Soft-delete a contact group: it is still listed, with ``deleted_at``."""
        with self.lock:
            group = self.group_store[group_id]
            group.updated_at = group.deleted_at = self.tick(5)

    # Call records

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
            answered = self.rng.random() < ANSWERED
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
            self._join_call(call)
            for key, value in fields.items():
                setattr(call, key, value)
            self.call_store[call.id] = call
        return call.id

    def _join_call(self, call: CallRecord) -> None:
        """Give ``call`` an agent, a department and a number the account has.

        What a warehouse joins on: ``agent_name`` is a user's name, ``department_name``
        a department's, ``did_number`` one of the account's numbers. Without them
        (an account seeded without users, departments or numbers) the call keeps
        the made-up ones. Deterministic (by ``seq``): the seeded data stays as it was.
        """
        agents = [user.name for user in self.user_store.values() if user.agent_id]
        if agents:
            call.agent = agents[call.seq % len(agents)]
        departments = [department.name for department in self.department_store.values()]
        if departments:
            call.department = departments[call.seq % len(departments)]
        numbers = [number.did for number in self.number_store.values()]
        if numbers:
            call.did = numbers[call.seq % len(numbers)]

    def _join_calls_to_the_account(self) -> None:
        """Join the seeded calls to the account, and return some missed calls.

        Every second outbound call rings back the customer of the call just before
        it when that was a missed inbound call: the missed calls that were returned.
        """
        calls = sorted(self.call_store.values(), key=lambda call: call.seq)
        for call in calls:
            self._join_call(call)
        for previous, call in itertools.pairwise(calls):
            inbound_missed = is_inbound(previous) and not previous.answered
            if not is_inbound(call) and call.seq % 2 == 0 and inbound_missed:
                call.client_number = client_number(previous)

    def touch_call(self, call_id: str | int, **changes: object) -> None:
        """Change a call after the fact (a recording_url arriving late)."""
        with self.lock:
            call = self.call_store[call_id]
            for key, value in changes.items():
                setattr(call, key, value)

    # Users

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

    # Reference data and outbound campaigns

    def _seed_reference_data(self) -> None:
        # A generator of their own: the data above stays what it was before these
        # endpoints existed, however many of these are seeded.
        self.reference_rng = random.Random(self.seed + 1)  # noqa: S311 (test data)
        self.ivr_store: dict[int, Ivr] = {}
        self.list_store: dict[int, BroadcastList] = {}
        self.lead_store: dict[int, list[Lead]] = {}
        self.broadcast_store: dict[str, Broadcast] = {}
        self.campaign_store: dict[int, DialerCampaign] = {}
        self.add_departments(self.departments)
        for n in range(1, self.ivrs + 1):
            self.ivr_store[300 + n] = Ivr(
                id=300 + n,
                name=f"IVR {n}",
                recording=5500 + 2 * n,
                invalid_recording=5501 + 2 * n,
                menu=[
                    ("1", "department", 21930),
                    ("2", "ivr", 300 + n),
                    ("9", "hangup", None),
                ],
            )
        for n in range(1, self.numbers + 1):
            self.number_store[n] = Number(
                id=n,
                did=f"+9180690{n:05d}",
                alias=None if n % 2 else f"Line {n}",
                destination="department" if n % 3 else "ivr",
            )
        for _ in range(self.broadcast_lists):
            self.add_broadcast_list(self.leads_per_list)
        self.add_broadcasts(self.broadcasts)
        for n in range(1, self.dialer_campaigns + 1):
            self.campaign_store[900 + n] = DialerCampaign(900 + n, f"Campaign {n}")

    def add_departments(self, count: int) -> list[int]:
        """Add ``count`` departments, each with a few of the agents users have."""
        rng = self.reference_rng
        ids = []
        with self.lock:
            for _ in range(count):
                department_id = 21930 + 7 * len(self.department_store)
                name = DEPARTMENTS[len(self.department_store) % len(DEPARTMENTS)]
                agents = [
                    (f"0{370701 + n}0001", rng.choice(FIRST_NAMES))
                    for n in range(rng.randint(0, 3))
                ]
                self.department_store[department_id] = Department(
                    id=department_id,
                    name=f"{name} {len(self.department_store) + 1}",
                    agents=agents,
                    use_as_queue=rng.random() < 0.5,  # noqa: PLR2004
                    calls_answered=rng.randint(0, 5000),
                    calls_missed=rng.randint(0, 500),
                    sticky_agent=rng.random() < 0.5,  # noqa: PLR2004
                )
                ids.append(department_id)
        return ids

    def remove_department(self, department_id: int) -> None:
        """Delete a department: the API stops returning it."""
        with self.lock:
            del self.department_store[department_id]

    def add_broadcast_list(self, leads: int) -> int:
        """Add a broadcast list with ``leads`` leads; return its id."""
        rng = self.reference_rng
        with self.lock:
            list_id = 4401 + len(self.list_store)
            self.list_store[list_id] = BroadcastList(list_id, f"Leads {list_id}")
            self.lead_store[list_id] = []
            for n in range(leads):
                created = self.base_time + timedelta(
                    seconds=rng.randint(0, 86400), milliseconds=rng.randint(0, 999)
                )
                self.lead_store[list_id].append(
                    Lead(
                        id=f"{rng.getrandbits(96):024x}",
                        list_id=list_id,
                        phone=f"+9197{list_id:04d}{n:04d}",
                        name=f"{rng.choice(FIRST_NAMES)} {n}",
                        call_count=rng.randint(0, 4),
                        created_at=created,
                        updated_at=created + timedelta(minutes=rng.randint(0, 600)),
                    )
                )
        return list_id

    def add_broadcasts(self, count: int) -> list[str]:
        """Add ``count`` broadcasts dialling the lists (list 4401 if there are none)."""
        rng = self.reference_rng
        lists = sorted(self.list_store) or [4401]
        ids = []
        with self.lock:
            for _ in range(count):
                n = len(self.broadcast_store)
                start = self.base_time + timedelta(hours=n)
                broadcast = Broadcast(
                    id=f"{rng.getrandbits(96):024x}",
                    name=f"Broadcast {n + 1}",
                    list_id=lists[n % len(lists)],
                    status=n % 4,
                    start=start,
                    end=None if n % 3 == 0 else start + timedelta(days=1),
                    created_at=start - timedelta(days=1),
                )
                self.broadcast_store[broadcast.id] = broadcast
                ids.append(broadcast.id)
        return ids
