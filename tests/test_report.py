"""The run report alone: progress lines and the summary, with a fake clock."""

from __future__ import annotations

import logging

import pytest

from tap_smartflo.errors import EndpointError, SmartfloError
from tap_smartflo.report import RunReport

STREAMS = ["contacts", "call_records", "users"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


class Selection:
    selected_streams = STREAMS


def new_report(clock: Clock, interval: float = 30) -> RunReport:
    return RunReport(
        Selection(),
        logger=logging.getLogger("tap-smartflo.test"),
        progress_interval=interval,
        clock=clock,
    )


def progress_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "Progress:" in r.getMessage()]


def test_progress_is_told_at_most_once_an_interval_per_active_stream(clock, caplog):
    caplog.set_level(logging.INFO)
    report = new_report(clock, interval=30)
    report.begin("contacts")
    for _ in range(40):
        clock.now += 1
        report.sent("contacts", retry=False)
        report.emitted("contacts", 100)
    # 40 s: one line at 30 s, none since.
    assert progress_lines(caplog) == [
        (
            "Progress: contacts: 2,900 records, 30 requests (1.0/s), "
            "0 throttled (429), 0 retries, 30 s"
        )
    ]
    report.end("contacts")
    clock.now += 60
    report.sent(None, retry=False)  # a login, no stream active
    assert len(progress_lines(caplog)) == 1


def test_call_records_progress_tells_the_share_done_and_the_time_left(clock, caplog):
    caplog.set_level(logging.INFO)
    report = new_report(clock, interval=10)
    report.begin("call_records")
    report.reached("call_records", 0.0, "2015-01-01 to 2026-11-29")
    report.sent("call_records", retry=False)
    report.sent("call_records", retry=True)
    report.throttled("call_records")
    clock.now += 120
    report.reached("call_records", 0.4, "2015-01-01 to 2026-11-29")
    assert progress_lines(caplog)[-1] == (
        "Progress: call_records: 40% of 2015-01-01 to 2026-11-29, 0 records, "
        "2 requests (0.0/s), 1 throttled (429), 1 retry, 2 min 0 s, about 3 min 0 s "
        "left"
    )


def test_no_progress_lines_when_the_interval_is_zero(clock, caplog):
    caplog.set_level(logging.INFO)
    report = new_report(clock, interval=0)
    report.begin("contacts")
    clock.now += 3600
    report.sent("contacts", retry=False)
    assert progress_lines(caplog) == []


def test_the_summary_has_a_line_per_selected_stream_and_one_for_the_run(clock):
    report = new_report(clock)
    report.begin("contacts")
    for _ in range(3):
        report.sent("contacts", retry=False)
    report.sent("contacts", retry=True)
    report.throttled("contacts")
    report.emitted("contacts", 250)
    clock.now += 2.5
    report.end("contacts")
    report.sent(None, retry=False)
    report.begin("users")
    report.refused(
        "users",
        EndpointError("HTTP 403 on /v1/users", status=403, path="/v1/users"),
        extracted_before=False,
    )
    report.end("users")
    clock.now += 0.5
    lines = report.summary(
        {"contacts": "bookmark 2024-05-08T12:00:00+00:00", "users": "full table"},
        "succeeded",
    )
    assert lines == [
        (
            "contacts: 250 records, 4 requests, 1 retry, 1 throttled (429), 2.5 s; "
            "bookmark 2024-05-08T12:00:00+00:00"
        ),
        (
            "call_records: 0 records, 0 requests, 0 retries, 0 throttled (429), 0.0 s; "
            "not reached"
        ),
        (
            "users: 0 records, 0 requests, 0 retries, 0 throttled (429), 0.0 s; "
            "skipped: HTTP 403"
        ),
        (
            "Run succeeded in 3.0 s: 3 streams, 250 records, 4 requests (and 1 login), "
            "1 retry, 1 throttled (429)"
        ),
    ]


def test_a_stream_that_lost_access_is_named_in_the_summary(clock):
    report = new_report(clock)
    error = EndpointError("HTTP 403 on /v1/users", status=403, path="/v1/users")
    report.refused("users", error, extracted_before=True)
    assert "'users' was extracted before" in report.lost["users"]
    line = report.summary({}, "failed")[2]
    assert line.endswith("refused: HTTP 403 (extracted before)")


def test_every_selected_stream_refused_fails_at_once(clock):
    report = new_report(clock)
    for name in STREAMS[:-1]:
        error = EndpointError(f"403 on {name}", status=403, path=f"/{name}")
        report.refused(name, error, extracted_before=False)
    with pytest.raises(SmartfloError, match="403 on users"):
        report.refused(
            "users",
            EndpointError("403 on users", status=403, path="/users"),
            extracted_before=False,
        )


def test_a_stream_the_run_never_reached_says_so_with_the_bookmark_it_kept(clock):
    # A run that stops early: the streams after it were not read, whatever their
    # replication; an incremental one's bookmark is where the last run left it.
    report = new_report(clock)
    lines = report.summary(
        {"contacts": "bookmark 2024-05-08T12:00:00+00:00", "users": "full table"},
        "stopped",
    )
    assert lines[0].endswith("; not reached (bookmark 2024-05-08T12:00:00+00:00 kept)")
    assert lines[1].endswith("; not reached")
    assert lines[2].endswith("; not reached")
