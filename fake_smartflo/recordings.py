"""Call recordings: audio at tokenised links that expire, and downloads that fail.

Each answered call's ``recording_url`` (the seeded one, or one that ``arrive``
sets; a test's own URL is sent as it is) is written afresh whenever the call is
listed: a link to this server's ``/recordings/<seq>.<ext>`` with the account's
``token`` and an ``expires`` time ``recording_link_seconds`` on (the real links
point at another host; a path of their own is what tells them apart here). A link
past its time answers ``expired_link_status`` (403, or 410); a wrong token 403.

The audio of a call is ``recording_size(call)`` bytes, made from its ``seq`` (so a
test can check an archived file byte for byte with ``recording_bytes``), written in
chunks as it is sent, so a 50 MB recording costs the server no 50 MB of memory.
Every ``cut_every``-th download is cut short (the full ``Content-Length`` promised,
half of the audio sent, the connection closed), and every ``error_every``-th request
of any path answers 500. ``downloads`` logs each download asked for: which call,
what it was answered, and whether an ``Authorization`` header came with it (the
API token must never travel to the recording host).
"""

from __future__ import annotations

import hashlib
import json
import random
import socket
import time
import typing as t
from dataclasses import dataclass, field
from urllib.parse import urlencode

from fake_smartflo.data import IST
from fake_smartflo.endpoints import Endpoints
from fake_smartflo.faults import Faults

if t.TYPE_CHECKING:
    from http.server import BaseHTTPRequestHandler
    from pathlib import Path

    from fake_smartflo.data import CallRecord
    from fake_smartflo.endpoints import Body, Params

#: Where the audio is served (the path of every recording link).
RECORDINGS_PATH = "/recordings/"
#: How the seeded calls' links begin (data.py): those are served from here.
SEEDED_LINKS = "https://recordings.example.com/"
#: Bytes written at a time, and the block each recording's bytes repeat.
_CHUNK = 1 << 16


@dataclass
class Download:
    """One request for a recording, as the server answered it."""

    seq: int
    status: int
    #: Whether the request carried an Authorization header (it never should).
    authorization: bool
    #: Whether the body was cut short on purpose.
    cut: bool = False


@dataclass
class Recordings(Faults, Endpoints):
    """Recording links in call records, and the audio behind them."""

    #: Seconds a link stays valid after the call was listed.
    recording_link_seconds: float = 120.0
    #: The status of an expired link (Smartflo's is undocumented: 403 or 410).
    expired_link_status: int = 403
    #: Every Nth download is cut short (0: none).
    cut_every: int = 0
    #: Every Nth request, of any path, answers 500 (0: none).
    error_every: int = 0
    #: Sizes in bytes of particular calls' recordings (by ``seq``); others are
    #: 8 to 32 kB.
    recording_sizes: dict[int, int] = field(default_factory=dict)
    #: Seconds the server waits between chunks of audio (a slow download).
    recording_chunk_delay: float = 0.0
    #: The recording host is down: every download answers 503.
    recordings_down: bool = False
    #: Where links point (set when the server starts).
    recordings_url: str = field(default="", init=False)
    #: Every request for a recording, in order of arrival.
    downloads: list[Download] = field(default_factory=list, init=False)
    _downloads_asked: int = field(default=0, init=False, repr=False)
    _requests_seen: int = field(default=0, init=False, repr=False)

    # What tests check against

    def recording_size(self, call: CallRecord) -> int:
        """How many bytes ``call``'s recording has."""
        return self.recording_sizes.get(call.seq, 8_000 + (call.seq * 7919) % 24_000)

    @staticmethod
    def content_type(call: CallRecord) -> str:
        """The recording's content type: WAV for every fifth call, else MP3."""
        return "audio/wav" if call.seq % 5 == 0 else "audio/mpeg"

    def recording_chunks(self, call: CallRecord) -> t.Iterator[bytes]:
        """The recording's bytes, a chunk at a time."""
        block = random.Random(call.seq).randbytes(_CHUNK)  # noqa: S311 (test data)
        left = self.recording_size(call)
        while left > 0:
            chunk = block[: min(left, _CHUNK)]
            left -= len(chunk)
            yield chunk

    def recording_bytes(self, call: CallRecord) -> bytes:
        """The whole recording of ``call``."""
        return b"".join(self.recording_chunks(call))

    def recording_sha256(self, call: CallRecord) -> str:
        """The sha256 (hex) of ``call``'s recording."""
        digest = hashlib.sha256()
        for chunk in self.recording_chunks(call):
            digest.update(chunk)
        return digest.hexdigest()

    def archive_path(self, call: CallRecord) -> str:
        """Where the tap archives ``call``'s recording (docs/recordings.md)."""
        extension = "wav" if self.content_type(call) == "audio/wav" else "mp3"
        return f"{call.started_at.astimezone(IST):%Y/%m/%d}/{call.id}.{extension}"

    def expected_archive(self) -> dict[str, str]:
        """What a complete archive holds now: relative path -> sha256."""
        return {
            self.archive_path(call): self.recording_sha256(call)
            for call in self.answered_calls()
        }

    def answered_calls(self) -> list[CallRecord]:
        """The calls whose recording this server has now."""
        with self.lock:
            return [c for c in self.call_store.values() if self.has_recording(c)]

    def downloads_of(self, call: CallRecord) -> list[Download]:
        """The requests for ``call``'s recording."""
        return [d for d in self.downloads if d.seq == call.seq]

    # Serving

    def recording_link(self, call: CallRecord) -> str:
        """A fresh tokenised link to ``call``'s recording."""
        extension = "wav" if self.content_type(call) == "audio/wav" else "mp3"
        query = urlencode(
            {
                "token": self.recording_token,
                "expires": f"{time.time() + self.recording_link_seconds:.3f}",
            }
        )
        return f"{self.recordings_url}{call.seq}.{extension}?{query}"

    def list_call_records(self, params: Params) -> Body:
        """Call records, each recording's link fresh from this listing.

        A link a test wrote itself (``touch_call``) is sent as it is.
        """
        body = super().list_call_records(params)
        if isinstance(body, dict) and isinstance(body.get("results"), list):
            for raw in body["results"]:
                call = self.call_store.get(raw.get("id"))
                if call is not None and self.has_recording(call):
                    raw["recording_url"] = self.recording_link(call)
        return body

    @staticmethod
    def has_recording(call: CallRecord) -> bool:
        """Whether the call's link is the seeded one, whose audio this server has."""
        return (call.recording_url or "").startswith(f"{SEEDED_LINKS}{call.seq}.")

    def arrive(self, call_id: str | int) -> None:
        """A call's recording becomes available (a link that arrives late)."""
        with self.lock:
            call = self.call_store[call_id]
            call.recording_url = f"{SEEDED_LINKS}{call.seq}.mp3"

    def next_fault(self, path: str) -> str | None:
        """Every ``error_every``-th request answers 500; then the other faults."""
        if self.error_every:
            with self.lock:
                self._requests_seen += 1
                if self._requests_seen % self.error_every == 0:
                    return "500"
        return super().next_fault(path)

    def serve_recording(
        self, handler: BaseHTTPRequestHandler, path: str, params: Params
    ) -> int:
        """Answer a request for a recording; return the status sent."""
        name = path.removeprefix(RECORDINGS_PATH).split(".")[0]
        with self.lock:
            call = next(
                (c for c in self.call_store.values() if str(c.seq) == name), None
            )
        authorization = handler.headers.get("Authorization") is not None
        status = 200
        if call is None or not self.has_recording(call):
            status = 404
        elif params.get("token") != self.recording_token:
            status = 403
        elif float(params.get("expires") or 0) < time.time():
            status = self.expired_link_status
        elif self.recordings_down:
            status = 503
        if call is None or status != 200:  # noqa: PLR2004 (OK)
            body = json.dumps({"success": False, "message": "Link expired"}).encode()
            self._answer(handler, status, "application/json", body)
            if call is not None:
                self.downloads.append(Download(call.seq, status, authorization))
            return status
        with self.lock:
            self._downloads_asked += 1
            cut = bool(self.cut_every) and self._downloads_asked % self.cut_every == 0
        self.downloads.append(Download(call.seq, 200, authorization, cut=cut))
        self._send_audio(handler, call, cut=cut)
        return 200

    @staticmethod
    def _answer(
        handler: BaseHTTPRequestHandler, status: int, content_type: str, body: bytes
    ) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def _send_audio(
        self, handler: BaseHTTPRequestHandler, call: CallRecord, *, cut: bool
    ) -> None:
        size = self.recording_size(call)
        handler.send_response(200)
        handler.send_header("Content-Type", self.content_type(call))
        handler.send_header("Content-Length", str(size))
        handler.end_headers()
        sent = 0
        try:
            for chunk in self.recording_chunks(call):
                if cut and sent + len(chunk) > size // 2:
                    handler.wfile.write(chunk[: size // 2 - sent])
                    handler.wfile.flush()
                    handler.close_connection = True
                    handler.connection.shutdown(socket.SHUT_RDWR)
                    return
                handler.wfile.write(chunk)
                sent += len(chunk)
                if self.recording_chunk_delay:
                    handler.wfile.flush()
                    time.sleep(self.recording_chunk_delay)
        except OSError:
            handler.close_connection = True  # the client went away


def archive_files(root: Path) -> dict[str, str]:
    """Every file under ``root`` (hidden ones too): relative path -> sha256."""
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }
