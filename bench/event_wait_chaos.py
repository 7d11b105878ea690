"""Duplicates in the chaos suite's kill -9 scenarios with and without the wait for events (issue
#16 item 6; README, "Proof of reliability", "Waiting for the providers' events").

    .venv/bin/python bench/event_wait_chaos.py                   # scale 3, event delay 12 s
    .venv/bin/python bench/event_wait_chaos.py --scale 5 --delay 12 --wait 30

Runs scenarios 1 (pool children killed) and 2 (worker main killed) once per configuration:

- ``no events``: the providers report nothing (the suite as before);
- ``events, wait 0``: the emulated providers report each message ``--delay`` s after accepting
  it (tests/chaos/provider_events.py), and an unknown outcome is retried after the usual backoff;
- ``events, wait N``: the same, with ``GPMAS_EVENT_WAIT_SECONDS=N``.

The delay is longer than the stack's 8 s lease on purpose: events arriving before the lease runs
out mark the job sent whatever the window; the window is for the events that come later.
Prints a table and writes bench/results/event_wait_chaos.{json,md}.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.chaos_report import RESULTS, run_suite  # noqa: E402 - after sys.path

SCENARIOS = "pool_children_killed or worker_main_process_killed"
HEADER = (
    "| configuration | scenario | submitted | lost | duplicated jobs | extra copies "
    "| copies of the duplicated jobs, by provider | recovery p99 (s) | event lag p50 / max (s) |\n"
    "|---|---|---:|---:|---:|---:|---|---:|---|"
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=3)
    parser.add_argument("--delay", type=float, default=12, help="seconds to each event")
    parser.add_argument("--wait", type=int, default=30, help="GPMAS_EVENT_WAIT_SECONDS when on")
    args = parser.parse_args()
    configurations = {
        "no events": {"GPMAS_CHAOS_PROVIDER_EVENTS": ""},
        "events, wait 0": {
            "GPMAS_CHAOS_PROVIDER_EVENTS": str(args.delay),
            "GPMAS_CHAOS_EVENT_WAIT_SECONDS": "0",
        },
        f"events, wait {args.wait}": {
            "GPMAS_CHAOS_PROVIDER_EVENTS": str(args.delay),
            "GPMAS_CHAOS_EVENT_WAIT_SECONDS": str(args.wait),
        },
    }
    results, worst = [], 0
    for name, env in configurations.items():
        with tempfile.TemporaryDirectory() as scratch:
            lags_path = Path(scratch) / "lags.jsonl"
            env = {**env, "GPMAS_CHAOS_EVENTS_REPORT": str(lags_path)}
            status, rows = run_suite(args.scale, SCENARIOS, env)
            lags = read_lines(lags_path) if env["GPMAS_CHAOS_PROVIDER_EVENTS"] else []
        worst = worst or status
        lags += [{}] * (len(rows) - len(lags))  # one per scenario, in the order they ran
        results += [
            {"configuration": name, "pytest_status": status, **row, "event_lag": lag}
            for row, lag in zip(rows, lags, strict=False)
        ]
    write(args, results, worst)
    return worst


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def table_row(row: dict) -> str:
    copies = sum(d["copies"] - 1 for d in row["duplicates"])
    providers = Counter(p for d in row["duplicates"] for p in d["providers"])
    by_provider = ", ".join(f"{kind} {n}" for kind, n in sorted(providers.items())) or "–"
    p99 = "–" if row["recovery_p99"] is None else f"{row['recovery_p99']:.1f}"
    lag = row.get("event_lag") or {}
    lags = f"{lag['lag_p50']:.1f} / {lag['lag_max']:.1f}" if lag.get("events") else "–"
    return (
        f"| {row['configuration']} | {row['scenario']} | {row['submitted']} | {row['lost']} "
        f"| {len(row['duplicates'])} | {copies} | {by_provider} | {p99} | {lags} |"
    )


def write(args, results: list[dict], status: int) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = {
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "scale": args.scale,
        "event_delay_seconds": args.delay,
        "event_wait_seconds": args.wait,
        "machine": f"{os.cpu_count()} cores",
        "pytest_status": status,
    }
    (RESULTS / "event_wait_chaos.json").write_text(json.dumps({**meta, "runs": results}, indent=2))
    heading = (
        f"Kill -9 duplicates, scale {args.scale:g}, events {args.delay:g} s after acceptance, "
        f"{meta['generated_at']}, {meta['machine']}; worst pytest exit status {status}."
    )
    table = "\n".join([HEADER, *(table_row(row) for row in results)])
    (RESULTS / "event_wait_chaos.md").write_text(f"{heading}\n\n{table}\n")
    print(f"\n{heading}\n\n{table}\n")


if __name__ == "__main__":
    sys.exit(main())
