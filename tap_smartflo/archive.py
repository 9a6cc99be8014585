"""The recordings archive: audio files in any fsspec file system, whole or not at all.

Layout: ``YYYY/MM/DD/<call_record_id>.<ext>`` under ``recordings_archive_url``, by
the call's date in India (IST, as Smartflo shows it), the extension from the
recording's content type. The archive holds these files and nothing else.

A file appears under its final name only once it is complete:

- on a local file system (``file://``) the audio is written to a hidden temporary
  name in the same folder (``.<name>.<pid>.partial``), flushed to disk, then
  renamed, which is atomic; a temporary file left by a process that was killed is
  removed the next time its folder is listed (its process is gone);
- on an object store (``s3://``, ``gs://``, ``az://`` ...) the audio is spooled to
  an unnamed temporary file on this machine, then uploaded in one PUT (s3fs uses a
  multipart upload above 50 MB, which also shows the object only when complete).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import typing as t
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

import fsspec  # type: ignore[import-untyped]  # no type hints of its own

from tap_smartflo.normalize import IST

if t.TYPE_CHECKING:
    from types import TracebackType

    from typing_extensions import Self

#: The extension of each audio content type (parameters such as ``; charset`` aside).
EXTENSIONS = {
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
    "audio/mpeg3": "mp3",
    "audio/x-mpeg-3": "mp3",
    "audio/wav": "wav",
    "audio/wave": "wav",
    "audio/x-wav": "wav",
    "audio/vnd.wave": "wav",
    "audio/ogg": "ogg",
    "audio/opus": "opus",
    "audio/mp4": "m4a",
    "audio/x-m4a": "m4a",
    "audio/aac": "aac",
    "audio/webm": "webm",
    "audio/gsm": "gsm",
    "audio/amr": "amr",
}
#: A recording of another (or no) content type: kept as it came, named so.
UNKNOWN_EXTENSION = "bin"
#: How a temporary file's name ends.
PARTIAL = ".partial"
#: How a recording spooled for an object store begins its name (then the pid).
SPOOLED = "tap-smartflo-recording-"
#: Bytes read back at a time (to hash a file already in the archive).
_CHUNK = 1 << 20


def extension(content_type: str | None) -> str:
    """The file extension for a recording of ``content_type``."""
    kind = (content_type or "").split(";")[0].strip().lower()
    return EXTENSIONS.get(kind, UNKNOWN_EXTENSION)


def archive_path(
    call_record_id: str, started_at: datetime, content_type: str | None
) -> str:
    """Where a call's recording lies, relative to the archive's URL.

    The id is percent-encoded: an id is data from the API, and a ``/`` or ``..`` in
    it must not lead out of its folder.
    """
    day = started_at.astimezone(IST)
    name = quote(call_record_id, safe="") or "_"
    return f"{day:%Y/%m/%d}/{name}.{extension(content_type)}"


def day_folder(started_at: datetime) -> str:
    """The folder (relative) of a call's recording."""
    return f"{started_at.astimezone(IST):%Y/%m/%d}"


class Archived(t.NamedTuple):
    """A recording found in the archive."""

    path: str  # relative to the archive's URL
    size: int
    #: When it was written (None: the file system does not say).
    modified: datetime | None


class Upload:
    """One recording on its way into the archive: written in chunks, then published.

    ``sha256`` and ``size`` count what was written. Until ``publish`` nothing is
    under the final name; ``discard`` (or leaving a ``with`` block without
    publishing) removes the temporary file.
    """

    def __init__(self, archive: Archive, path: str) -> None:
        """Start writing the recording that ends up at ``path`` (relative)."""
        self.archive = archive
        self.path = path
        self.digest = hashlib.sha256()
        self.size = 0
        self.published = False
        final = archive.full(path)
        if archive.local:
            final_path = Path(final)
            final_path.parent.mkdir(parents=True, exist_ok=True)
            self._temp: Path | None = final_path.with_name(
                f".{final_path.name}.{os.getpid()}{PARTIAL}"
            )
            self._file: t.IO[bytes] = self._temp.open("wb")
        else:
            # Spooled on this machine, outside the archive; removed when closed
            # (a killed process's is removed by the next run: sweep_spooled).
            self._temp = None
            self._file = tempfile.NamedTemporaryFile(  # noqa: SIM115 (closed in publish or discard)
                prefix=f"{SPOOLED}{os.getpid()}-", suffix=PARTIAL
            )

    @property
    def sha256(self) -> str:
        """The sha256 (hex) of what was written."""
        return self.digest.hexdigest()

    def write(self, chunk: bytes) -> None:
        """Append ``chunk`` to the recording."""
        self._file.write(chunk)
        self.digest.update(chunk)
        self.size += len(chunk)

    def publish(self) -> None:
        """Put the complete recording under its final name (atomically)."""
        final = self.archive.full(self.path)
        try:
            if self._temp is not None:
                self._file.flush()
                os.fsync(self._file.fileno())
                self._file.close()
                self._temp.replace(final)
                self._temp = None
            else:
                self._file.flush()
                self.archive.fs.put_file(self._file.name, final)
            self.published = True
        finally:
            self.discard()
        self.archive.added(self.path, self.size)

    def discard(self) -> None:
        """Remove the temporary file (a recording not published is not kept)."""
        self._file.close()
        if self._temp is not None:
            self._temp.unlink(missing_ok=True)
            self._temp = None

    def __enter__(self) -> Self:
        """Write the recording."""
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Remove what was not published."""
        self.discard()


class Archive:
    """The recordings archive at an fsspec URL."""

    def __init__(self, url: str, storage_options: t.Mapping[str, t.Any]) -> None:
        """Open the file system of ``url`` with ``storage_options`` (credentials)."""
        self.url = url
        self.fs, self.root = fsspec.core.url_to_fs(url, **storage_options)
        protocols = self.fs.protocol
        protocols = (protocols,) if isinstance(protocols, str) else protocols
        self.local = "file" in protocols or "local" in protocols
        self.root = self.root.rstrip("/")
        #: Folder (relative) -> {file name: (size, modified)}, listed once a run.
        self._folders: dict[str, dict[str, tuple[int, datetime | None]]] = {}
        if not self.local:
            sweep_spooled()

    def full(self, path: str) -> str:
        """The file system's own path for ``path`` (relative to the archive)."""
        return f"{self.root}/{path}"

    def upload(self, path: str) -> Upload:
        """Begin writing the recording that ends up at ``path`` (relative)."""
        return Upload(self, path)

    def find(self, call_record_id: str, started_at: datetime) -> Archived | None:
        """The call's recording, if the archive has it (whatever its extension)."""
        folder = day_folder(started_at)
        files = self._listing(folder)
        stem = (quote(call_record_id, safe="") or "_") + "."
        for name, (size, modified) in files.items():
            if name.startswith(stem) and "." not in name[len(stem) :]:
                return Archived(f"{folder}/{name}", size, modified)
        return None

    def added(self, path: str, size: int) -> None:
        """Note a file this run put at ``path`` (the listing stays true)."""
        folder, _, name = path.rpartition("/")
        if folder in self._folders:
            self._folders[folder][name] = (size, datetime.now(timezone.utc))

    def read_back(self, path: str) -> tuple[str, int]:
        """The sha256 (hex) and size of an archived file, read in chunks."""
        digest = hashlib.sha256()
        size = 0
        with self.fs.open(self.full(path), "rb") as file:
            while chunk := file.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
        return digest.hexdigest(), size

    def _listing(self, folder: str) -> dict[str, tuple[int, datetime | None]]:
        """The files in ``folder`` (listed once a run); leftover partials removed."""
        if folder in self._folders:
            return self._folders[folder]
        try:
            entries = self.fs.ls(self.full(folder), detail=True, refresh=True)
        except FileNotFoundError:
            entries = []
        files: dict[str, tuple[int, datetime | None]] = {}
        for entry in entries:
            if entry.get("type") != "file":
                continue
            name = str(entry["name"]).rstrip("/").rpartition("/")[2]
            if name.startswith(".") and name.endswith(PARTIAL):
                self._remove_if_abandoned(folder, name)
                continue
            files[name] = (int(entry.get("size") or 0), _modified(entry))
        self._folders[folder] = files
        return files

    def _remove_if_abandoned(self, folder: str, name: str) -> None:
        """Remove a temporary file whose process has ended (killed mid-download)."""
        pid = name.removesuffix(PARTIAL).rpartition(".")[2]
        if pid.isdigit() and not _running(int(pid)):
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(self.full(f"{folder}/{name}"))


def _modified(entry: t.Mapping[str, t.Any]) -> datetime | None:
    """When a listed file was written: ``mtime`` (local) or ``LastModified`` (S3)."""
    value = entry.get("mtime", entry.get("LastModified", entry.get("last_modified")))
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, timezone.utc)
    return None


def sweep_spooled(folder: str | None = None) -> None:
    """Remove recordings spooled by processes that have ended (killed mid-upload)."""
    with contextlib.suppress(OSError):
        for path in Path(folder or tempfile.gettempdir()).glob(f"{SPOOLED}*{PARTIAL}"):
            pid = path.name.removeprefix(SPOOLED).partition("-")[0]
            if pid.isdigit() and not _running(int(pid)):
                path.unlink(missing_ok=True)


def _running(pid: int) -> bool:
    """Whether a process ``pid`` runs on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's
    return True
