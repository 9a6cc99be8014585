"""Call recordings: every answered call's audio archived once, byte for byte.

Through real HTTP against the fake (recording links that expire, downloads cut
short, 500s, an account's rate limit), into a folder and into S3 (moto's server on
127.0.0.1, s3fs as the client), and across a kill -9.
"""

from __future__ import annotations

import hashlib
import json
import logging
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from fake_smartflo import FakeSmartflo, Fault
from fake_smartflo.faults import RATE_LIMITED
from fake_smartflo.recordings import RECORDINGS_PATH, archive_files
from scripts.environment import clean_env
from tap_smartflo.archive import SPOOLED, archive_path
from tap_smartflo.recordings import pending_recordings
from tests.configs import FAST_RETRIES, base_config
from tests.messages import RFC3339_UTC
from tests.running import catalog_selecting

UTC = timezone.utc
STREAMS = ["call_records", "call_recordings"]
CALLS_PATH = "/v1/call/records"
EXTENSIONS = {"audio/mpeg": "mp3", "audio/wav": "wav"}


def days_ago(days: float) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).isoformat()


def assert_records_match(api, records) -> None:
    """One call_recordings record per answered call, each true to the audio."""
    by_id = {r["call_record_id"]: r for r in records}
    assert len(by_id) == len(records)
    calls = {str(c.id): c for c in api.answered_calls()}
    assert set(by_id) == set(calls)
    for key, record in by_id.items():
        call = calls[key]
        assert record["sha256"] == api.recording_sha256(call)
        assert record["size_bytes"] == api.recording_size(call)
        assert record["archive_path"] == api.archive_path(call)
        assert record["content_type"] == api.content_type(call)
        assert datetime.fromisoformat(record["started_at"]) == call.started_at
        assert RFC3339_UTC.match(record["archived_at"])


def downloads(api) -> list:
    return [r for r in api.requests if r.path.startswith(RECORDINGS_PATH)]


# The scenario, scaled down: 400 calls at 5 requests a second with links
# that expire two minutes after listing take two minutes, so the tests keep the
# shape (links expiring while the run downloads, one download in 23 cut short,
# one request in 31 a 500, the fake refusing anything over the account's limit)
# at 40 requests a second, 100 calls and links that live 1.5 s. The full size is a
# benchmark scenario (benchmarks/bench.py recordings).
SCENARIO = {"calls": 100, "rate_limit": 40, "recording_link_seconds": 1.5}
SCENARIO_FAULTS = {"cut_every": 23, "error_every": 31}


def scenario_config(api, archive_url: str, **settings):
    return base_config(
        api.url,
        start_date=days_ago(4),
        recordings_archive_url=archive_url,
        account_requests_per_second=SCENARIO["rate_limit"],
        **{**FAST_RETRIES, **settings},
    )


def test_every_answered_call_is_archived_once_byte_for_byte_through_faults(
    tap, tmp_path
):
    archive = tmp_path / "calls"
    with FakeSmartflo(**SCENARIO, **SCENARIO_FAULTS) as api:
        config = scenario_config(api, archive.as_uri())
        first = tap(config, streams=STREAMS)
        asked_first = len(downloads(api))
        second = tap(config, streams=STREAMS, state=first.final_state)
    assert first.returncode == 0, first.stderr
    # Every answered call's audio, byte for byte, and nothing else.
    assert archive_files(archive) == api.expected_archive()
    records = first.records("call_recordings")
    assert_records_match(api, records)
    assert first.schema_errors("call_recordings") == []
    # The faults happened, and the links expired under the run (and were renewed
    # by reading the call again with its call_id).
    assert any(d.cut for d in api.downloads)
    assert any(
        r.fault == "500" and r.path.startswith(RECORDINGS_PATH) for r in api.requests
    )
    assert any(d.status == 403 for d in api.downloads)
    assert any("call_id" in r.params for r in api.requests_to(CALLS_PATH))
    # Downloads kept to the account's limit with the API's requests.
    assert [r for r in api.requests if r.fault == RATE_LIMITED] == []
    # The API token never went to the recording host; no link in the log.
    assert not any(d.authorization for d in api.downloads)
    assert "token=" not in first.stderr
    assert "token=" not in json.dumps(first.states)
    # A second run over the same window downloads nothing, and emits nothing new.
    assert second.returncode == 0, second.stderr
    assert len(downloads(api)) == asked_first
    assert second.records("call_recordings") == []
    assert "call_recordings: 0 records, 0 requests" in second.stderr
    assert archive_files(archive) == api.expected_archive()


# Against S3: moto's standalone server on 127.0.0.1, s3fs as the client.

S3_KEY, S3_SECRET = "testing-key-id", "testing-secret-access-key-value"
BUCKET = "call-audio"


@pytest.fixture(scope="module")
def s3():
    """moto's server on a free port, with an empty bucket; the storage options."""
    from moto.server import ThreadedMotoServer  # noqa: PLC0415 (slow to import)

    # Its request lines would land in the log of the tap run beside it.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    options = {
        "key": S3_KEY,
        "secret": S3_SECRET,
        "endpoint_url": f"http://{host}:{port}",
        "client_kwargs": {"region_name": "eu-west-1"},
    }
    import s3fs  # noqa: PLC0415

    fs = s3fs.S3FileSystem(**options)
    fs.mkdir(BUCKET)
    yield fs, options
    server.stop()


def s3_files(fs, prefix: str) -> dict[str, str]:
    root = f"{BUCKET}/{prefix}"
    fs.invalidate_cache()
    return {
        path.removeprefix(root + "/"): hashlib.sha256(fs.cat_file(path)).hexdigest()
        for path in fs.find(root)
    }


def test_the_same_holds_in_s3_with_links_that_answer_410(tap, s3):
    fs, options = s3
    scenario = {**SCENARIO, "calls": 60, "recording_link_seconds": 0.5}
    with FakeSmartflo(**scenario, **SCENARIO_FAULTS, expired_link_status=410) as api:
        config = scenario_config(
            api, f"s3://{BUCKET}/smartflo", recordings_storage_options=options
        )
        first = tap(config, streams=STREAMS)
        asked_first = len(downloads(api))
        second = tap(config, streams=STREAMS, state=first.final_state)
    assert first.returncode == 0, first.stderr
    assert s3_files(fs, "smartflo") == api.expected_archive()
    assert_records_match(api, first.records("call_recordings"))
    assert any(d.status == 410 for d in api.downloads)
    assert [r for r in api.requests if r.fault == RATE_LIMITED] == []
    assert "token=" not in first.stderr
    assert S3_SECRET not in first.stderr
    assert S3_SECRET not in first.stdout
    # Nothing spooled for the upload is left on this machine.
    assert not list(Path(tempfile.gettempdir()).glob(f"{SPOOLED}*"))
    assert second.returncode == 0, second.stderr
    assert len(downloads(api)) == asked_first
    # An object store's clock is not the tap's, and S3 keeps whole seconds: files
    # written in the last seconds before the STATE may have their records sent
    # again, read back from the archive, the same (never downloaded again).
    emitted = {r["call_record_id"]: r for r in first.records("call_recordings")}
    for record in second.records("call_recordings"):
        before = emitted[record["call_record_id"]]
        for field in ("archive_path", "sha256", "size_bytes", "content_type"):
            assert record[field] == before[field]


# Safety


def test_selected_without_an_archive_the_run_ends_before_any_request(tap):
    with FakeSmartflo(calls=20) as api:
        run = tap(base_config(api.url, start_date=days_ago(2)), streams=STREAMS)
    assert run.returncode == 1
    errors = [line for line in run.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1
    assert "recordings_archive_url is not set" in errors[0]
    assert "Traceback" not in run.stderr
    assert api.requests == []


def test_recordings_are_off_unless_selected(tap, tmp_path):
    catalog = catalog_selecting(["call_records"])
    recordings = next(
        s for s in catalog["streams"] if s["tap_stream_id"] == "call_recordings"
    )
    top = next(m for m in recordings["metadata"] if m["breadcrumb"] == [])
    assert top["metadata"]["selected-by-default"] is False
    with FakeSmartflo(calls=30) as api:
        archive = tmp_path / "calls"
        run = tap(
            base_config(
                api.url, start_date=days_ago(4), recordings_archive_url=archive.as_uri()
            ),
            args=[],
        )
    assert run.returncode == 0, run.stderr
    assert run.records("call_records")
    assert run.records("call_recordings") == []
    assert downloads(api) == []
    assert not archive.exists()


def test_no_link_reaches_a_log_line_even_at_debug_level(tap, tmp_path):
    secret = "rec-token-zyxwvutsrqponmlk"
    with FakeSmartflo(calls=40, recording_token=secret, cut_every=5) as api:
        config = scenario_config(api, (tmp_path / "calls").as_uri())
        run = tap(config, streams=STREAMS, env=clean_env(LOGLEVEL="DEBUG"))
    assert run.returncode == 0, run.stderr
    assert "/recordings/" in run.stderr  # the requests are logged, masked
    assert secret not in run.stderr
    assert secret not in json.dumps(run.states)


# Failures, late links and missed calls


def test_a_recording_that_keeps_failing_is_kept_and_archived_by_a_later_run(
    tap, tmp_path
):
    archive = tmp_path / "calls"
    with FakeSmartflo(calls=30, call_history=timedelta(days=3)) as api:
        failing = min(api.answered_calls(), key=lambda c: c.started_at)
        path = f"{RECORDINGS_PATH}{failing.seq}.{EXTENSIONS[api.content_type(failing)]}"
        api.faults.extend(Fault("500", path) for _ in range(200))
        config = scenario_config(
            api, archive.as_uri(), retry_max_seconds=0.3, call_records_lookback_hours=0
        )
        first = tap(config, streams=STREAMS)
        after_first = archive_files(archive)
        api.faults.clear()
        api.requests.clear()
        second = tap(config, streams=STREAMS, state=first.final_state)
    assert first.returncode == 0, first.stderr
    pending = first.final_state["bookmarks"]["call_recordings"]["pending"]
    assert list(pending) == [str(failing.id)]
    assert "token" not in json.dumps(pending)
    assert "1 not archived yet (kept in the STATE" in first.stderr
    assert set(after_first) == set(api.expected_archive()) - {api.archive_path(failing)}
    # The call is older than the next run's window (no lookback): read again by
    # its call_id for a fresh link, then archived.
    assert second.returncode == 0, second.stderr
    windows = [r.params for r in api.requests_to(CALLS_PATH)]
    assert any(p.get("call_id") for p in windows)
    assert [r["call_record_id"] for r in second.records("call_recordings")] == [
        str(failing.id)
    ]
    assert "pending" not in second.final_state["bookmarks"]["call_recordings"]
    assert archive_files(archive) == api.expected_archive()


def test_missed_calls_and_links_that_arrive_late_make_no_noise(tap, tmp_path):
    archive = tmp_path / "calls"
    with FakeSmartflo(calls=0) as api:
        now = datetime.now(UTC).replace(microsecond=0)
        late = api.add_call(now - timedelta(hours=2))
        api.touch_call(late, answered=True, recording_url=None)
        missed = api.add_call(now - timedelta(hours=3))
        api.touch_call(missed, answered=False, recording_url=None)
        config = scenario_config(api, archive.as_uri())
        first = tap(config, streams=STREAMS)
        api.arrive(late)  # the link arrives
        second = tap(config, streams=STREAMS, state=first.final_state)
    for run in (first, second):
        assert run.returncode == 0, run.stderr
        assert not [
            line
            for line in run.stderr.splitlines()
            if "WARNING" in line and "unsorted" not in line
        ]
    assert first.records("call_recordings") == []
    assert [r["call_record_id"] for r in second.records("call_recordings")] == [
        str(late)
    ]
    assert archive_files(archive) == api.expected_archive()


def test_a_kill_mid_download_leaves_nothing_partial_and_the_rerun_misses_nothing(
    tap, tmp_path
):
    archive = tmp_path / "calls"
    with FakeSmartflo(calls=16, recording_chunk_delay=0.02) as api:
        # Four chunks each, a pause after each: a kill lands mid-download.
        api.recording_sizes = {c.seq: 4 << 16 for c in api.answered_calls()}
        config = scenario_config(api, archive.as_uri())
        for name, document in {
            "config": config,
            "catalog": catalog_selecting(STREAMS),
        }.items():
            (tmp_path / f"{name}.json").write_text(json.dumps(document))
        output = tmp_path / "killed.jsonl"
        with output.open("w") as stdout:
            process = subprocess.Popen(
                [sys.executable, "-m", "tap_smartflo"]
                + [
                    f"--{name}={tmp_path / name}.json" for name in ("config", "catalog")
                ],
                stdout=stdout,
                stderr=subprocess.DEVNULL,
                env=clean_env(),
            )
            # The fourth download has begun: its audio takes 80 ms to arrive.
            deadline = time.monotonic() + 60
            while sum(d.status == 200 for d in api.downloads) < 4:
                assert process.poll() is None, "the run ended before it was killed"
                assert time.monotonic() < deadline
                time.sleep(0.002)
            time.sleep(0.03)
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
        left = archive_files(archive)
        messages = [json.loads(line) for line in output.read_text().splitlines()]
        states = [m["value"] for m in messages if m["type"] == "STATE"]
        rerun = tap(config, streams=STREAMS, state=states[-1] if states else None)
    assert process.returncode == -signal.SIGKILL
    expected = api.expected_archive()
    # What the kill left: a temporary file, and only complete files by their names.
    partials = [path for path in left if path.rpartition("/")[2].startswith(".")]
    assert len(partials) <= 1
    assert len(left) >= 3
    assert all(left[path] == expected[path] for path in left if path not in partials)
    # After the rerun: every recording, nothing partial, nothing else.
    assert rerun.returncode == 0, rerun.stderr
    assert archive_files(archive) == expected
    records = [
        m["record"]
        for m in messages
        if m["type"] == "RECORD" and m["stream"] == "call_recordings"
    ] + rerun.records("call_recordings")
    assert {r["call_record_id"] for r in records} == {
        str(c.id) for c in api.answered_calls()
    }
    by_id = {str(c.id): c for c in api.answered_calls()}
    for record in records:
        assert record["sha256"] == api.recording_sha256(by_id[record["call_record_id"]])


# The pieces, without a server


def test_an_id_from_the_api_cannot_lead_out_of_its_folder():
    started = datetime(2026, 12, 5, 20, 0, tzinfo=UTC)  # the 6th in India
    assert archive_path("64f1c2a9", started, "audio/mpeg") == "2026/12/06/64f1c2a9.mp3"
    assert archive_path("../../etc/x", started, "audio/wav; rate=8000") == (
        "2026/12/06/..%2F..%2Fetc%2Fx.wav"
    )
    assert archive_path("7", started, None).endswith("/7.bin")


def test_malformed_recordings_to_retry_in_the_state_are_dropped_with_a_warning():
    warnings: list[str] = []
    saved = {
        "a1": {"call_id": "1.2", "started_at": "2026-12-05T10:00:00+00:00"},
        "b2": {"call_id": 7, "started_at": "2026-12-05T10:00:00+00:00"},
        "c3": "not an object",
        "d4": {"call_id": None},
    }
    kept = pending_recordings(saved, warnings.append)
    assert list(kept) == ["a1"]
    assert kept["a1"].link is None
    assert len(warnings) == 3
    assert pending_recordings(["a1"], warnings.append) == {}
    assert len(warnings) == 4


def test_a_recording_host_that_is_down_costs_a_few_retries_not_one_per_recording(
    tap, tmp_path
):
    archive = tmp_path / "calls"
    with FakeSmartflo(calls=20, recordings_down=True) as api:
        config = scenario_config(api, archive.as_uri(), retry_max_seconds=0.2)
        first = tap(config, streams=STREAMS)
        tried = {d.seq for d in api.downloads}
        api.recordings_down = False
        second = tap(config, streams=STREAMS, state=first.final_state)
    answered = api.answered_calls()
    assert first.returncode == 0, first.stderr
    assert len(tried) == 3  # then the run stopped trying
    pending = first.final_state["bookmarks"]["call_recordings"]["pending"]
    assert set(pending) == {str(c.id) for c in answered}
    assert "the recording host looks down" in first.stderr
    assert f"{len(answered)} not archived yet" in first.stderr
    assert second.returncode == 0, second.stderr
    assert archive_files(archive) == api.expected_archive()
    assert "pending" not in second.final_state["bookmarks"]["call_recordings"]
