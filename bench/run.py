"""Run the GPMAS benchmarks; print a table and write JSON to bench/results/.

    ./dev bench                       # every benchmark at the sizes of issue #8
    ./dev bench fanout --messages 2000

Needs PostgreSQL (DATABASE_URL, default the local server CI uses) and Redis (REDIS_URL, default
the local server, else an embedded redis-server). Each run creates its own database and Redis
key prefix and removes them at the end. Not part of the test run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import processes, stack  # noqa: E402 - after sys.path

RESULTS = ROOT / "bench" / "results"
BENCHMARKS = (
    "fanout",
    "bulk_invite",
    "contention",
    "ranking",
    "soak",
    "slow_provider",
    "webhook_events",
    "latency",
    "drain_scale",
)


def plan(args):
    from bench import (
        bulk_invite,
        contention,
        fanout,
        latency,
        ranking,
        slow_provider,
        soak,
        webhook_events,
    )

    return [
        ("fanout", f"1. fan-out, {args.messages} messages", lambda: fanout.run(args.messages)),
        ("bulk_invite", "2. bulk invite", bulk_invite.run),
        ("contention", "3. contention", contention.run),
        ("ranking", "4. ranking overhead", ranking.run),
        ("soak", f"5. soak, {args.soak} messages, one worker", lambda: soak.run(args.soak)),
        ("slow_provider", "6. one slow provider", slow_provider.run),
        ("webhook_events", "7. webhook events", lambda: webhook_events.run(args.webhook_events)),
        (
            "latency",
            f"8. latency world, {args.messages} invitations",
            lambda: latency.run(args.messages, args.peer_messages, args.providers.split(",")),
        ),
        ("drain_scale", "9. past one machine", lambda: _drain_scale(args)),
    ]


def _drain_scale(args) -> dict:
    from bench import drain_scale

    return drain_scale.run(args.drain_jobs, args.drain_sends)


def print_fanout_table(rows: list[dict]) -> None:
    print(
        "\n| sink | contestant | msg/s | GPMAS / this | own CPU/msg (processes + PostgreSQL + "
        "Redis) | machine CPU/msg | check |"
    )
    print("|---|---|---:|---:|---:|---:|---|")
    for row in rows:
        parts = " + ".join(
            f"{row.get(f'{part}_ms_per_message', 0):.2f}"
            for part in ("processes", "postgresql", "redis")
        )
        costs = (
            f"{_ms(row.get('own_ms_per_message'))} ({parts})",
            _ms(row.get("machine_ms_per_message")),
        )
        print(
            f"| {row['sink']} | {row['contestant']} | {row['per_second']:.0f} | "
            f"{row['gpmas_ratio']:.2f}x | {' | '.join(costs)} | {row['check']} |"
        )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", metavar="name", help=f"any of {', '.join(BENCHMARKS)}")
    parser.add_argument("--messages", type=int, default=10_000, help="fan-out and latency size")
    parser.add_argument(
        "--peer-messages", type=int, default=1000, help="latency: most messages a peer sends"
    )
    parser.add_argument(
        "--providers", default="sendgrid,mailgun,ses,smtp", help="latency: which providers"
    )
    parser.add_argument("--soak", type=int, default=100_000, help="soak size")
    parser.add_argument("--webhook-events", type=int, default=10_000, help="webhook events")
    parser.add_argument("--drain-jobs", type=int, default=100_000, help="due jobs for one drain")
    parser.add_argument("--drain-sends", type=int, default=500, help="messages per worker process")
    args = parser.parse_args()
    unknown = set(args.names) - set(BENCHMARKS)
    if unknown:
        parser.error(f"no benchmark named {', '.join(sorted(unknown))}")
    if set(args.providers.split(",")) - {"sendgrid", "mailgun", "smtp", "ses"}:
        parser.error("--providers takes a comma-separated list of sendgrid, mailgun, smtp, ses")
    args.names = args.names or list(BENCHMARKS)
    try:
        stack.prepare()
    except stack.BenchSetupError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    report = {
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": stack.machine(),
        "results": {},
    }
    print("machine: " + ", ".join(f"{k} {v}" for k, v in report["machine"].items()), flush=True)
    sandbox = processes.start_sandbox()
    try:
        for name, title, call in plan(args):
            if name in args.names:
                print(f"\n{title}", flush=True)
                report["results"][name] = call()
    finally:
        sandbox.stop()
        stack.finish()
    if "fanout" in report["results"]:
        print_fanout_table(report["results"]["fanout"])
    if "latency" in report["results"]:
        from bench.latency import print_table

        print_table(report["results"]["latency"])
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "bench.json"
    path.write_text(json.dumps(report, indent=2, default=str))
    print(f"\nJSON: {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
