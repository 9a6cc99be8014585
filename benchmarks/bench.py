"""Benchmark tap-smartflo against the fake Smartflo, beside a bare ``requests`` loop.

One command runs every scenario of the performance issue and prints the ratios:

    .venv/bin/python -m benchmarks.bench            # all scenarios
    .venv/bin/python -m benchmarks.bench rate shared  # some (see SCENARIOS)

Each runner is a subprocess, run as a user would (the CLI, stdout to a file), against
the same fake server (in a process of its own, so that this process stays small and
the runners' peak memory, read from wait4(), is their own).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from typing_extensions import Self

from fake_smartflo import TOKEN, FakeSmartflo
from scripts.catalog import discover, select_streams
from scripts.environment import clean_env

if TYPE_CHECKING:
    from collections.abc import Callable


class Server:
    """A FakeSmartflo in a child process, driven through a pipe."""

    def __init__(self, **settings: Any) -> None:
        self.settings = settings
        self.url = ""

    def __enter__(self) -> Self:
        self.conn, child = multiprocessing.Pipe()
        self.process = multiprocessing.Process(
            target=_serve, args=(child, self.settings), daemon=True
        )
        self.process.start()
        self.url = self.conn.recv()
        return self

    def ask(self, command: str) -> Any:
        self.conn.send(command)
        return self.conn.recv()

    def __exit__(self, *exc: object) -> None:
        self.ask("stop")
        self.process.join()


def _serve(conn: Any, settings: dict[str, Any]) -> None:
    api = FakeSmartflo(**settings).start()
    conn.send(api.url)
    while True:
        command = conn.recv()
        if command == "reset":
            api.requests.clear()
            conn.send(None)
        elif command == "stats":
            refused = sum(1 for r in api.requests if r.status == 429)
            conn.send((len(api.requests), refused, len(api.store)))
        elif command == "stop":
            api.stop()
            conn.send(None)
            return


@dataclass
class Result:
    """What one runner did."""

    name: str
    wall: float
    cpu: float
    records: int
    requests: int
    refused: int
    peak_mb: float

    def row(self) -> str:
        rate = self.records / self.wall if self.wall else 0
        return (
            f"{self.name:<22} {self.wall:8.2f} s {self.cpu:8.2f} s {rate:10.0f} rec/s "
            f"{self.requests:6d} req {self.refused:5d} refused {self.peak_mb:7.1f} MB"
        )


def run(name: str, command: list[str], api: Server) -> Result:
    """Run ``command`` with stdout to a file; measure it."""
    api.ask("reset")
    with tempfile.TemporaryFile() as sink:
        start = time.perf_counter()
        process = subprocess.Popen(
            command,
            stdout=sink,
            stderr=subprocess.DEVNULL,
            env=clean_env(),
        )
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode:
            msg = f"{name} failed with exit code {process.returncode}"
            raise SystemExit(msg)
        sink.seek(0)
        records = sum(1 for line in sink if line.startswith(b'{"type":"RECORD"'))
        sink.seek(0)
    requests, refused, _ = api.ask("stats")
    return Result(
        name,
        wall,
        usage.ru_utime + usage.ru_stime,
        records,
        requests,
        refused,
        usage.ru_maxrss / 1024,
    )


def tap(api: Server, workdir: Path, **settings: object) -> list[str]:
    config = {"api_url": api.url, "api_token": TOKEN, **settings}
    path = workdir / f"config-{len(list(workdir.iterdir()))}.json"
    path.write_text(json.dumps(config))
    # Contacts only: the scenarios measure contacts pages against a bare loop.
    catalog = workdir / "catalog-contacts.json"
    if not catalog.exists():
        catalog.write_text(json.dumps(select_streams(discover(), ["contacts"])))
    command = [sys.executable, "-m", "tap_smartflo", "--config", str(path)]
    return [*command, "--catalog", str(catalog)]


def bare(api: Server, page_size: int = 100) -> list[str]:
    return [
        sys.executable,
        "-m",
        "benchmarks.bare_loop",
        api.url,
        TOKEN,
        str(page_size),
    ]


def compare(
    title: str, api: Server, workdir: Path, **tap_settings: object
) -> dict[str, Result]:
    print(f"\n## {title}")
    run("warm-up (server cache)", bare(api), api)
    results = {
        "bare": run("bare requests loop", bare(api), api),
        "sequential": run(
            "tap, sequential",
            tap(api, workdir, max_concurrent_requests=1, **tap_settings),
            api,
        ),
        "tap": run("tap", tap(api, workdir, **tap_settings), api),
    }
    for result in results.values():
        print(result.row())
    expected = api.ask("stats")[2]
    for result in results.values():
        if result.records != expected:
            msg = f"{result.name} emitted {result.records} records, not {expected}"
            raise SystemExit(msg)
    return results


def cpu(workdir: Path) -> None:
    with Server(contacts=100_000, cache_bodies=True) as api:
        results = compare("CPU-bound: 100 000 contacts, no latency", api, workdir)
    ratio = results["tap"].wall / results["bare"].wall
    print(f"tap wall / bare loop wall = {ratio:.2f} (goal <= 2)")


def latency(workdir: Path) -> None:
    with Server(contacts=20_000, latency=0.05, cache_bodies=True) as api:
        results = compare(
            "Latency-bound: 20 000 contacts, 50 ms a request", api, workdir
        )
    floor = math.ceil(20_000 / 100) * 0.05
    ratio = results["tap"].wall / floor
    print(f"sequential floor (pages x latency) = {floor:.1f} s")
    print(f"tap wall / sequential floor = {ratio:.2f} (goal <= 0.3)")


def paced(
    workdir: Path,
    title: str,
    ideal: Callable[[Result], tuple[str, float]],
    goal: float,
    refused_goal: float | None = None,
    **server: Any,
) -> None:
    """Contacts (10 000 unless ``server`` says) behind a rate limit: the tap's wall
    time against ``ideal``.

    ``ideal`` says, from the tap's result, what the ideal is and its seconds.
    """
    server = {"contacts": 10_000, **server}
    with Server(latency=0.02, cache_bodies=True, **server) as api:
        result = compare(title, api, workdir)["tap"]
    what, seconds = ideal(result)
    print(f"ideal ({what}) = {seconds:.1f} s")
    print(f"tap wall / ideal = {result.wall / seconds:.2f} (goal <= {goal})")
    refused = f"tap requests refused = {result.refused / result.requests:.0%}"
    goal_text = "" if refused_goal is None else f" (goal <= {refused_goal:.0%})"
    print(refused + goal_text)


PAGES = math.ceil(10_000 / 100)


def rate(workdir: Path) -> None:
    paced(
        workdir,
        "Rate-limited: 10 000 contacts, 4 requests/s (untold), 20 ms",
        lambda _: ("pages / allowed rate", PAGES / 4),
        1.2,
        0.10,
        rate_limit=4,
    )


def fixed(workdir: Path) -> None:
    paced(
        workdir,
        # Longer than the others: the first half minute finds the limit (its
        # refusals are the price of learning), the rest shows where it settles.
        "Fixed windows: 30 000 contacts, 4 requests per clock second (untold), 20 ms",
        lambda _: ("pages / allowed rate", 3 * PAGES / 4),
        1.2,
        0.15,  # settled, a few percent; finding the limit costs the rest
        contacts=30_000,
        rate_limit=4,
        fixed_windows=True,
    )


def shared(workdir: Path) -> None:
    paced(
        workdir,
        "Shared account: 6 requests/s, another client steadily using 3, 20 ms",
        lambda _: ("pages / the 3 left", PAGES / 3),
        1.5,
        rate_limit=6,
        background_rate=3,
    )


def foreign(workdir: Path) -> None:
    paced(
        workdir,
        "Others' bursts: 5 requests/s, every 6th refused whatever the pace, 20 ms",
        lambda result: ("requests sent / 5", result.requests / 5),
        1.5,
        rate_limit=5,
        refuse_every=6,
    )


def memory(workdir: Path) -> None:
    print("\n## Memory: peak RSS as data grows")
    peaks = {}
    for contacts in (2_000, 40_000):
        with Server(contacts=contacts, cache_bodies=True) as api:
            run("warm-up (server cache)", bare(api), api)
            result = run(f"tap, {contacts} contacts", tap(api, workdir), api)
        print(result.row())
        peaks[contacts] = result.peak_mb
    print(f"peak RSS 40 000 / 2 000 = {peaks[40_000] / peaks[2_000]:.2f} (goal <= 1.3)")


#: What a server does with a ``limit`` above what it serves (FakeSmartflo settings).
SHAPES = {
    "caps at 100, reports 100": {"page_cap": 100},
    "caps at 500, echoes the limit asked": {"page_cap": 500, "echo_asked_limit": True},
    "serves 37, echoes the limit asked": {"page_cap": 37, "echo_asked_limit": True},
    "refuses a limit above 100 (422)": {"refuse_limit_above": 100},
    "serves the 1000 asked": {"page_cap": 1000},
}


def pages(workdir: Path) -> None:
    """Requests per 10 000 contacts for each server shape, at 50 ms a request.

    "asking 100" is the tap with page_size 100 (what it asked before issue #23),
    "in turn" the tap without read-ahead (no request past the end of the data).
    Then the latency ratio: 20 000 contacts from a server serving 100 a page, the
    tap's wall time over the time its pages take fetched in turn.
    """
    contacts, latency = 10_000, 0.05
    print(f"\n## Page sizes: {contacts} contacts, {latency * 1000:.0f} ms a request")
    header = f"{'server':<38} {'asking 100':>10} {'tap':>5} {'in turn':>8}"
    print(f"{header} {'tap wall':>9}")
    for shape, settings in SHAPES.items():
        with Server(
            contacts=contacts, latency=latency, cache_bodies=True, **settings
        ) as api:
            results = [
                run(name, tap(api, workdir, **config), api)
                for name, config in (
                    ("asking 100", {"page_size": 100}),
                    ("in turn", {"max_concurrent_requests": 1}),
                    ("tap", {}),
                )
            ]
        for result in results:
            if result.records != contacts:
                msg = f"{shape}: {result.name} emitted {result.records} records"
                raise SystemExit(msg)
        asking_100, in_turn, result = results
        print(
            f"{shape:<38} {asking_100.requests:>10} {result.requests:>5} "
            f"{in_turn.requests:>8} {result.wall:>7.2f} s"
        )
    with Server(contacts=20_000, latency=latency, cache_bodies=True) as api:
        result = run("tap", tap(api, workdir), api)
    floor = math.ceil(20_000 / 100) * latency
    print(
        f"latency: 20 000 contacts, pages of 100: tap {result.wall:.2f} s, "
        f"{result.requests} requests; / (pages x latency = {floor:.1f} s) = "
        f"{result.wall / floor:.2f} (goal <= 0.3)"
    )


SCENARIOS = {
    "cpu": cpu,
    "latency": latency,
    "rate": rate,
    "fixed": fixed,
    "shared": shared,
    "foreign": foreign,
    "memory": memory,
    "pages": pages,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenarios", nargs="*", choices=[*SCENARIOS, []], default=[])
    args = parser.parse_args()
    print(f"Machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.scenarios or SCENARIOS:
            SCENARIOS[name](Path(tmp))


if __name__ == "__main__":
    main()
