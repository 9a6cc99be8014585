"""A fake Smartflo API: a real threaded HTTP server on 127.0.0.1.

It serves what ``shared/smartflo-api.md`` documents, with the quirks the tap must
survive switched on by attributes:

- ``page_cap``: the server caps ``limit`` silently and echoes the capped value;
- ``ids_as_strings``: ids arrive as numeric strings ("mixed": every other one);
- times arrive as ``+0000`` or ``+0530`` (the same instant, written either way);
- ``updated_after`` is naive ``Y-m-d H:i:s`` read in ``naive_tz`` (IST, the harsh
  reading), compared exclusively unless ``inclusive_updated_after``;
- ``ignore_page``: every page is page 1 (a broken server);
- a request log (``requests``) that tests assert on.

The data can change between runs (``add_contacts``, ``touch``, ``soft_delete``).
Run it by hand with ``python -m tests.fake_smartflo --contacts 5000``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import socket
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


@dataclass
class LoggedRequest:
    """One request as the server saw it (the Authorization value is not kept)."""

    method: str
    path: str
    params: dict[str, str]
    authorized: bool
    status: int = 0
    fault: str | None = None


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


_TOO_MANY = json.dumps({"success": "false", "message": "Too many requests."}).encode()
_SERVER_ERROR = json.dumps({"success": False, "message": "Server error"}).encode()
#: kind -> (status, body, headers) for the faults that are plain responses.
CANNED_FAULTS: dict[str, tuple[int, bytes, dict[str, str]]] = {
    "429": (429, _TOO_MANY, {}),
    "429-retry-after": (429, _TOO_MANY, {"Retry-After": "1"}),
    "rate-limit": (429, _TOO_MANY, {}),
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
    #: Serve repeated identical requests from a cache (benchmarks: keeps the
    #: server's own JSON work out of the client's measurements).
    cache_bodies: bool = False
    base_time: datetime = datetime(2024, 5, 8, 12, 0, 0, tzinfo=UTC)

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
        self.server: ThreadingHTTPServer | None = None
        self.token_expiry: dict[str, float] = {}
        self._sorted: tuple[int, list[Contact]] = (-1, [])
        self._accepted: deque[float] = deque()
        self.body_cache: dict[tuple[object, ...], bytes] = {}
        self.failed_logins = 0
        self.issued_tokens = 0

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
            while self._accepted and now - self._accepted[0] >= 1.0:
                self._accepted.popleft()
            if len(self._accepted) >= self.rate_limit:
                return True
            self._accepted.append(now)
            return False

    def routes(self) -> dict[tuple[str, str], object]:
        """(method, path) -> handler taking the query params, returning a body."""
        return {("GET", "/v1/contacts"): self.list_contacts}

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
        self.server = ThreadingHTTPServer(("127.0.0.1", port), handler)
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
            return self.send_json(
                entry, 401, {"success": False, "message": "Unauthenticated."}
            )
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
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    api = FakeSmartflo(contacts=args.contacts).start(args.port)
    print(f"Fake Smartflo API at {api.url} (token {TOKEN})", flush=True)  # noqa: T201
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        api.stop()


if __name__ == "__main__":
    main()
