"""Serve the fake Smartflo API until interrupted: ``python -m fake_smartflo``."""

from __future__ import annotations

import argparse
import threading

from fake_smartflo import SAMPLE_ACCOUNT, TOKEN, FakeSmartflo


def main() -> None:
    """Serve sample data on 127.0.0.1 and print where."""
    parser = argparse.ArgumentParser(
        prog="python -m fake_smartflo",
        description="Serve a fake Smartflo API with sample data on 127.0.0.1.",
    )
    for name, default in SAMPLE_ACCOUNT.items():
        flag = "--" + name.replace("_", "-")
        parser.add_argument(flag, type=int, default=default, dest=name)
    parser.add_argument("--port", type=int, default=0, help="default: a free port")
    args = vars(parser.parse_args())
    port = args.pop("port")
    api = FakeSmartflo(**args).start(port)
    print(f"Fake Smartflo API at {api.url} (token {TOKEN})", flush=True)  # noqa: T201
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        api.stop()


if __name__ == "__main__":
    main()
