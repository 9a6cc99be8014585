"""The floor any Python client pays: fetch the pages in turn, print each record.

``python -m benchmarks.bare_loop URL TOKEN PAGE_SIZE`` writes Singer RECORD lines to
stdout. It sleeps one second on a 429 and tries again (it is told nothing else).
"""

from __future__ import annotations

import json
import sys
import time

import requests


def main() -> None:
    url, token, page_size = sys.argv[1], sys.argv[2], int(sys.argv[3])
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    out = sys.stdout
    page = 1
    while True:
        response = session.get(
            f"{url}/v1/contacts", params={"limit": page_size, "page": page}, timeout=60
        )
        if response.status_code == 429:
            time.sleep(1)
            continue
        response.raise_for_status()
        body = response.json()
        results = body["results"]
        for record in results:
            out.write(
                json.dumps(
                    {"type": "RECORD", "stream": "contacts", "record": record},
                    separators=(",", ":"),
                )
                + "\n"
            )
        if not results or len(results) < body["limit"]:
            break
        page += 1


if __name__ == "__main__":
    main()
