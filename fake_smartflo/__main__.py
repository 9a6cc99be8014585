"""Serve the fake Smartflo API until interrupted: ``python -m fake_smartflo``."""

from __future__ import annotations

import argparse
import threading

from fake_smartflo import TOKEN, FakeSmartflo


def main() -> None:
    """Serve sample data on 127.0.0.1 and print where."""
    parser = argparse.ArgumentParser(
        prog="python -m fake_smartflo",
        description="Serve a fake Smartflo API with sample data on 127.0.0.1.",
    )
    parser.add_argument("--contacts", type=int, default=1000)
    parser.add_argument("--groups", type=int, default=12)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--users", type=int, default=40)
    parser.add_argument("--departments", type=int, default=5)
    parser.add_argument("--ivrs", type=int, default=3)
    parser.add_argument("--numbers", type=int, default=4, help="the account's DIDs")
    parser.add_argument("--broadcast-lists", type=int, default=3)
    parser.add_argument("--leads-per-list", type=int, default=20)
    parser.add_argument("--broadcasts", type=int, default=120)
    parser.add_argument("--dialer-campaigns", type=int, default=3)
    parser.add_argument("--port", type=int, default=0, help="default: a free port")
    args = parser.parse_args()
    api = FakeSmartflo(
        contacts=args.contacts,
        contact_groups=args.groups,
        calls=args.calls,
        users=args.users,
        departments=args.departments,
        ivrs=args.ivrs,
        numbers=args.numbers,
        broadcast_lists=args.broadcast_lists,
        leads_per_list=args.leads_per_list,
        broadcasts=args.broadcasts,
        dialer_campaigns=args.dialer_campaigns,
    ).start(args.port)
    print(f"Fake Smartflo API at {api.url} (token {TOKEN})", flush=True)  # noqa: T201
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        api.stop()


if __name__ == "__main__":
    main()
