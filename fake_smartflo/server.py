"""The HTTP side: a local threaded server, the request log, and ``FakeSmartflo``."""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
import time
import typing as t
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from typing_extensions import Self

from fake_smartflo.faults import (
    CANNED_FAULTS,
    LOGIN_THROTTLED,
    RATE_LIMITED,
    REFUSED_FOR_OTHERS,
    Faults,
)
from fake_smartflo.logins import LOGIN_PATH, Logins
from fake_smartflo.more import Answer, MoreEndpoints
from fake_smartflo.recordings import RECORDINGS_PATH, Recordings


class LocalServer(ThreadingHTTPServer):
    """A threaded HTTP server on 127.0.0.1, serving from a daemon thread at once.

    Quiet about clients that hang up (a tap exiting with pages in flight).
    """

    daemon_threads = True
    #: How often the serving loop looks for a shutdown: ``close`` waits for it (the
    #: default, half a second, would add that much to every test's end).
    poll_interval = 0.01

    def __init__(self, handler: type[BaseHTTPRequestHandler], port: int = 0) -> None:
        """Serve ``handler`` on ``port`` (a free one unless given)."""
        super().__init__(("127.0.0.1", port), handler)
        threading.Thread(
            target=self.serve_forever, args=(self.poll_interval,), daemon=True
        ).start()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def close(self) -> None:
        """Stop serving and release the port."""
        self.shutdown()
        self.server_close()

    def handle_error(self, request: t.Any, client_address: t.Any) -> None:  # noqa: ANN401
        """Report a failure in a handler, unless the client just hung up."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


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


@dataclass
class FakeSmartflo(Recordings, Faults, Logins, MoreEndpoints):
    """The fake API: the data, its endpoints, recordings, logins and faults, over HTTP.

    Use as a context manager, or ``start()`` and ``stop()``. Every option is an
    attribute that may also be changed while it serves.
    """

    #: Seconds every request waits before it is answered.
    latency: float = 0.0
    #: Rewrites each successful data body (to serve malformed responses).
    body_filter: t.Callable[[dict[str, t.Any]], object] | None = None
    #: Serve repeated identical requests from a cache (benchmarks: keeps the
    #: server's own JSON work out of the client's measurements).
    cache_bodies: bool = False
    #: Every request received, in order of arrival.
    requests: list[LoggedRequest] = field(default_factory=list, init=False)
    server: LocalServer | None = field(default=None, init=False, repr=False)
    body_cache: dict[tuple[object, ...], bytes] = field(
        default_factory=dict, init=False, repr=False
    )

    @property
    def url(self) -> str:
        """Base URL of the running server."""
        if self.server is None:
            msg = "the fake server is not running"
            raise RuntimeError(msg)
        return self.server.url

    def start(self, port: int = 0) -> Self:
        """Start serving on 127.0.0.1 (on a free port unless ``port`` is given)."""
        self.server = LocalServer(type("Handler", (_Handler,), {"api": self}), port)
        self.recordings_url = self.server.url + RECORDINGS_PATH
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self.server is not None:
            self.server.close()
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
        """Answer a GET."""
        self.handle_request("GET")

    def do_POST(self) -> None:
        """Answer a POST."""
        self.handle_request("POST")

    def handle_request(self, method: str) -> None:
        """Log the request, then answer with a fault, a login or data."""
        api = self.api
        url = urlparse(self.path)
        params = {k: v[-1] for k, v in parse_qs(url.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        authorization = self.headers.get("Authorization")
        status = api.token_status(authorization)
        entry = LoggedRequest(method, url.path, params, authorized=status == "ok")
        with api.lock:
            api.requests.append(entry)
        if api.latency:
            time.sleep(api.latency)
        if api.moved_to:
            location = {"Location": api.moved_to.rstrip("/") + self.path}
            return self.send_raw(entry, 307, b"", location)
        if api.refused_for_others():
            return self.send_fault(entry, REFUSED_FOR_OTHERS)
        if api.over_rate_limit():
            return self.send_fault(entry, RATE_LIMITED)
        if fault := api.next_fault(url.path):
            return self.send_fault(entry, fault)
        if url.path.startswith(RECORDINGS_PATH):
            entry.status = api.serve_recording(self, url.path, params)
        elif (method, url.path) == ("POST", LOGIN_PATH):
            self.send_json(entry, *api.login(body))
        else:
            self.send_route(entry, status, authorization)
        return None

    def send_route(
        self, entry: LoggedRequest, token_status: str, authorization: str | None
    ) -> None:
        """Data from the endpoint's route, unless the path or the token is refused."""
        api = self.api
        found = api.resolve(entry.method, entry.path)
        if found is None:
            # The API gateway answers unknown paths with 403, not 404.
            return self.send_json(entry, 403, {"message": "Forbidden"})
        route, path_params = found
        if refusal := api.refusal(token_status, authorization):
            return self.send_json(entry, *refusal)
        if refusal := api.limit_refusal(entry.params):
            return self.send_json(entry, *refusal)
        key = (api.version, entry.path, tuple(sorted(entry.params.items())))
        if api.cache_bodies and key in api.body_cache:
            return self.send_raw(entry, 200, api.body_cache[key])
        result: object = route({**entry.params, **path_params})
        if isinstance(result, Answer):
            return self.send_json(entry, result.status, result.body)
        if api.body_filter is not None:
            result = api.body_filter(t.cast("dict[str, t.Any]", result))
        payload = json.dumps(result).encode()
        if api.cache_bodies:
            api.body_cache[key] = payload
        return self.send_raw(entry, 200, payload)

    def send_fault(self, entry: LoggedRequest, kind: str) -> None:
        """Fail this request as ``kind`` says."""
        entry.fault = kind
        if kind == LOGIN_THROTTLED:
            return self.send_json(entry, 429, self.api.throttled_login())
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
        """Answer ``body`` as JSON."""
        self.send_raw(entry, status, json.dumps(body).encode(), headers)

    def send_raw(
        self,
        entry: LoggedRequest,
        status: int,
        payload: bytes,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer ``payload`` as it is (JSON if it looks like JSON, else HTML)."""
        entry.status = status
        self.send_response(status)
        content_type = "application/json" if payload[:1] in b"{[" else "text/html"
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)
