"""Rewrite the README's settings table from ``tap-smartflo --about --format=markdown``.

Run after changing a setting: ``.venv/bin/python -m scripts.readme_settings``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
TABLE = re.compile(r"(## Settings\n\n)(\|.*?)(\n\n)", re.DOTALL)


def about_table() -> str:
    """The settings table the tap prints about itself."""
    about = subprocess.run(
        [sys.executable, "-m", "tap_smartflo", "--about", "--format=markdown"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = TABLE.search(about)
    if match is None:
        msg = "no settings table in --about output"
        raise SystemExit(msg)
    return match.group(2)


def main() -> None:
    text = README.read_text()
    table = about_table()
    README.write_text(TABLE.sub(lambda m: m.group(1) + table + m.group(3), text, 1))


if __name__ == "__main__":
    main()
