"""Run the chaos suite (tests/chaos) and write its report as JSON and as a Markdown table.

    .venv/bin/python bench/chaos_report.py            # the short (CI) form, ~3-4 minutes
    .venv/bin/python bench/chaos_report.py --long     # the long form: GPMAS_CHAOS_SCALE=20
    .venv/bin/python bench/chaos_report.py --scale 5 -k redis

Needs PostgreSQL and Redis (DATABASE_URL, REDIS_URL; defaults: the CI servers on 127.0.0.1).
Writes bench/results/chaos.json and bench/results/chaos.md and prints the table. Exits with
pytest's status, so a violated invariant fails the command as well as the suite.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.chaos.table import MARKDOWN_HEADER, markdown_row  # noqa: E402 - after sys.path

RESULTS = ROOT / "bench" / "results"
LONG_SCALE = 20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--long", action="store_true", help=f"scale x{LONG_SCALE}")
    parser.add_argument("--scale", type=float, help="batch and fault-loop multiplier")
    parser.add_argument("-k", default="", help="pytest -k expression (a subset of scenarios)")
    args = parser.parse_args()
    scale = args.scale or (LONG_SCALE if args.long else 1)
    status, rows = run_suite(scale, args.k)
    write_report(scale, status, rows)
    return status


def run_suite(scale: float, k: str, extra_env: dict | None = None) -> tuple[int, list[dict]]:
    """pytest over tests/chaos at this scale (``extra_env``: chaos options such as
    ``GPMAS_CHAOS_PROVIDER_EVENTS``): its exit status and the scenarios' report rows."""
    with tempfile.TemporaryDirectory() as scratch:
        rows_path = Path(scratch) / "chaos.jsonl"
        env = {
            "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/test",
            "REDIS_URL": "redis://127.0.0.1:6379/0",
            **os.environ,
            "GPMAS_CHAOS_SCALE": str(scale),
            "GPMAS_CHAOS_REPORT": str(rows_path),
            **(extra_env or {}),
        }
        command = [
            sys.executable,
            "-m",
            "pytest",
            "tests/chaos",
            "-m",
            "chaos",
            "-p",
            "no:cacheprovider",
            "-q",
            f"--timeout={int(600 * scale)}",
        ]
        if k:
            command += ["-k", k]
        status = subprocess.call(command, cwd=ROOT, env=env)
        rows = (
            [json.loads(line) for line in rows_path.read_text().splitlines()]
            if (rows_path.exists())
            else []
        )
    return status, rows


def write_report(scale: float, status: int, rows: list[dict]) -> None:
    """bench/results/chaos.json and chaos.md, and the table printed."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = {
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "scale": scale,
        "pytest_status": status,
        "machine": f"{os.cpu_count()} cores",
    }
    (RESULTS / "chaos.json").write_text(json.dumps({**meta, "scenarios": rows}, indent=2))
    table = "\n".join([MARKDOWN_HEADER, *(markdown_row(row) for row in rows)])
    heading = (
        f"Chaos report, scale {scale:g} ({'long' if scale > 1 else 'short/CI'} form), "
        f"{meta['generated_at']}, {meta['machine']}; pytest exit status {status}."
    )
    (RESULTS / "chaos.md").write_text(f"{heading}\n\n{table}\n")
    print(f"\n{heading}\n\n{table}\n\nwritten: {RESULTS / 'chaos.json'}, {RESULTS / 'chaos.md'}")


if __name__ == "__main__":
    sys.exit(main())
