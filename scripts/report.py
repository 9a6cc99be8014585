"""The answers the demo ends with, read from the DuckDB warehouse the dbt models built.

``answers(warehouse)`` reads them; ``text(...)`` is the short report the demo prints;
``html(...)`` is one static page (no network assets) with a chart of calls per day.
Run on its own: ``.venv/bin/python -m scripts.report output/warehouse.duckdb``.
"""

from __future__ import annotations

import html as markup
import sys
from dataclasses import dataclass
from pathlib import Path

import duckdb

#: The schema dbt builds the models in (transform/profiles.yml).
MODELS = "analytics"
DAYS = 7
TOP = 5


@dataclass(frozen=True)
class Day:
    """One IST day's calls."""

    day: str
    calls: int
    answered: int
    missed: int


@dataclass(frozen=True)
class Answers:
    """What a contact centre asks first, as the models answer it."""

    days: list[Day]
    inbound_calls: int
    inbound_answered: int
    unreturned: int
    #: The latest missed calls nobody returned: (IST time, number, department, agent).
    latest_unreturned: list[tuple[str, str, str, str]]
    #: The busiest agents: (name, calls, answered, talk minutes).
    agents: list[tuple[str, int, int, int]]

    @property
    def inbound_answer_rate(self) -> float | None:
        """Answered inbound calls over inbound calls (None without any)."""
        return (
            self.inbound_answered / self.inbound_calls if self.inbound_calls else None
        )


def answers(warehouse: Path, *, days: int = DAYS, top: int = TOP) -> Answers:
    """Read the answers from the models in ``warehouse``."""
    with duckdb.connect(str(warehouse), read_only=True) as db:
        daily = db.execute(
            f"""
            SELECT strftime(call_date_ist, '%Y-%m-%d'), sum(calls), sum(answered),
                   sum(missed)
            FROM {MODELS}.smartflo_calls_daily
            GROUP BY call_date_ist ORDER BY call_date_ist DESC LIMIT ?
            """,  # noqa: S608 (a constant schema)
            [days],
        ).fetchall()
        inbound = db.execute(
            f"""
            SELECT coalesce(sum(calls), 0), coalesce(sum(answered), 0)
            FROM {MODELS}.smartflo_calls_daily WHERE direction = 'inbound'
            """  # noqa: S608
        ).fetchone()
        unreturned = db.execute(
            f"SELECT count(*) FROM {MODELS}.smartflo_missed_unreturned"  # noqa: S608
        ).fetchone()
        latest = db.execute(
            f"""
            SELECT strftime(started_at_utc AT TIME ZONE 'Asia/Kolkata',
                            '%Y-%m-%d %H:%M'),
                   client_number, coalesce(department_name, '-'),
                   coalesce(agent_name, '-')
            FROM {MODELS}.smartflo_missed_unreturned
            ORDER BY started_at_utc DESC LIMIT ?
            """,  # noqa: S608
            [top],
        ).fetchall()
        agents = db.execute(
            f"""
            SELECT agent_name, sum(calls), sum(answered),
                   cast(round(sum(talk_seconds) / 60) AS BIGINT)
            FROM {MODELS}.smartflo_agent_daily
            GROUP BY agent_name ORDER BY sum(calls) DESC, agent_name LIMIT ?
            """,  # noqa: S608
            [top],
        ).fetchall()
    assert inbound is not None  # noqa: S101 (an aggregate always has a row)
    assert unreturned is not None  # noqa: S101
    return Answers(
        days=[Day(*row) for row in reversed(daily)],
        inbound_calls=int(inbound[0]),
        inbound_answered=int(inbound[1]),
        unreturned=int(unreturned[0]),
        latest_unreturned=[tuple(row) for row in latest],  # type: ignore[misc]
        agents=[tuple(row) for row in agents],  # type: ignore[misc]
    )


def percent(rate: float | None) -> str:
    """A rate as a percentage, or "-" when there is none."""
    return "-" if rate is None else f"{rate:.0%}"


def text(found: Answers) -> str:
    """The short report the demo prints."""
    most = max((d.calls for d in found.days), default=0)
    lines = [f"Calls per day (IST), the last {len(found.days)} days with calls:"]
    lines += [
        f"  {d.day}  {d.calls:5} calls  {d.answered:5} answered  {d.missed:5} missed"
        f"  {'#' * round(40 * d.calls / most)}"
        for d in found.days
    ] or ["  no calls yet"]
    lines.append(
        f"Inbound answer rate: {percent(found.inbound_answer_rate)}"
        f" ({found.inbound_answered} of {found.inbound_calls} inbound calls answered)"
    )
    lines.append(
        f"Missed inbound calls nobody called back within 24 hours: {found.unreturned};"
        " the latest:"
    )
    lines += [
        f"  {when}  {number}  {department}  (agent {agent})"
        for when, number, department, agent in found.latest_unreturned
    ]
    lines.append("Busiest agents (calls, answered, talk minutes):")
    lines += [
        f"  {name:24} {calls:5} {answered:5} {minutes:6}"
        for name, calls, answered, minutes in found.agents
    ]
    return "\n".join(lines)


def chart(days: list[Day]) -> str:
    """An inline SVG bar chart of calls per day: answered below, missed above."""
    width, height, top, bottom, left = 640, 260, 20, 40, 40
    most = max((d.calls for d in days), default=0) or 1
    step = (width - left) / max(len(days), 1)
    scale = (height - top - bottom) / most
    parts = [
        (
            f'<svg id="calls-per-day" xmlns="http://www.w3.org/2000/svg" role="img"'
            f' width="{width}" height="{height}" viewBox="0 0 {width} {height}">'
        ),
        "<title>Calls per day (IST): answered and missed</title>",
        (
            f'<line x1="{left}" y1="{height - bottom}" x2="{width}"'
            f' y2="{height - bottom}" stroke="#444"/>'
        ),
        (
            f'<text x="{left - 6}" y="{top + 4}" text-anchor="end" font-size="11">'
            f"{most}</text>"
        ),
        (
            f'<text x="{left - 6}" y="{height - bottom}" text-anchor="end"'
            ' font-size="11">0</text>'
        ),
    ]
    for n, d in enumerate(days):
        x = left + n * step + step * 0.15
        bar = step * 0.7
        answered, missed = d.answered * scale, d.missed * scale
        base = height - bottom
        parts += [
            (
                f'<rect class="answered" data-day="{d.day}" data-calls="{d.answered}"'
                f' x="{x:.1f}" y="{base - answered:.1f}" width="{bar:.1f}"'
                f' height="{answered:.1f}" fill="#2a7d4f"/>'
            ),
            (
                f'<rect class="missed" data-day="{d.day}" data-calls="{d.missed}"'
                f' x="{x:.1f}" y="{base - answered - missed:.1f}" width="{bar:.1f}"'
                f' height="{missed:.1f}" fill="#c8553d"/>'
            ),
            (
                f'<text x="{x + bar / 2:.1f}" y="{base - answered - missed - 4:.1f}"'
                f' text-anchor="middle" font-size="11">{d.calls}</text>'
            ),
            (
                f'<text x="{x + bar / 2:.1f}" y="{base + 16}" text-anchor="middle"'
                f' font-size="11">{d.day[5:]}</text>'
            ),
        ]
    parts.append("</svg>")
    return "\n".join(parts)


def html(found: Answers, *, source: str) -> str:
    """One static page: the chart, then the answers as tables."""
    e = markup.escape
    unreturned = "".join(
        f"<tr><td>{e(when)}</td><td>{e(number)}</td><td>{e(department)}</td>"
        f"<td>{e(agent)}</td></tr>"
        for when, number, department, agent in found.latest_unreturned
    )
    agents = "".join(
        f"<tr><td>{e(name)}</td><td>{calls}</td><td>{answered}</td>"
        f"<td>{minutes}</td></tr>"
        for name, calls, answered, minutes in found.agents
    )
    days = "".join(
        f"<tr><td>{d.day}</td><td>{d.calls}</td><td>{d.answered}</td>"
        f"<td>{d.missed}</td></tr>"
        for d in found.days
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Smartflo: calls per day</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 1.5em; }}
td, th {{ border-bottom: 1px solid #ddd; padding: 0.2em 0.8em; text-align: left; }}
.key span {{ display: inline-block; width: 0.8em; height: 0.8em; }}
</style>
</head>
<body>
<h1>Calls per day (IST)</h1>
<p class="key"><span style="background:#2a7d4f"></span> answered
<span style="background:#c8553d"></span> missed</p>
{chart(found.days)}
<p>Inbound answer rate: <strong>{percent(found.inbound_answer_rate)}</strong>
({found.inbound_answered} of {found.inbound_calls} inbound calls answered).</p>
<table><tr><th>Day</th><th>Calls</th><th>Answered</th><th>Missed</th></tr>
{days}</table>
<h2>Missed calls nobody returned ({found.unreturned}), the latest</h2>
<table><tr><th>When (IST)</th><th>Number</th><th>Department</th><th>Agent</th></tr>
{unreturned}</table>
<h2>Busiest agents</h2>
<table><tr><th>Agent</th><th>Calls</th><th>Answered</th><th>Talk minutes</th></tr>
{agents}</table>
<p>From {e(source)}: the models in schema {MODELS} (transform/).</p>
</body>
</html>
"""


def write(warehouse: Path, page: Path) -> Answers:
    """Read the answers from ``warehouse`` and write the page to ``page``."""
    found = answers(warehouse)
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(html(found, source=warehouse.name), encoding="utf-8")
    return found


if __name__ == "__main__":
    warehouse = Path(sys.argv[1] if len(sys.argv) > 1 else "output/warehouse.duckdb")
    print(text(write(warehouse, warehouse.with_name("report.html"))))
