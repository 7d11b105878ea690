"""The report's Markdown table. No Django here: bench/chaos_report.py imports it directly."""

from __future__ import annotations

from collections import Counter

MARKDOWN_HEADER = (
    "| scenario | submitted | lost | duplicates (causes) | stuck | recovery p50 / p99 / max (s) "
    "| overbookings / double acceptances | calls while open / halted | throughput (sent/s) |\n"
    "|---|---:|---:|---|---:|---|---|---|---:|"
)


def _seconds(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def _maybe(value: int | None) -> str:
    return "–" if value is None else str(value)


def markdown_row(row: dict) -> str:
    """One table row from a report's dict (as written to the JSON results)."""
    causes = Counter(d["cause"] for d in row["duplicates"])
    duplicates = str(len(row["duplicates"]))
    if causes:
        duplicates += " (" + ", ".join(f"{n} {cause}" for cause, n in causes.items()) + ")"
    recovery = " / ".join(
        _seconds(row[k]) for k in ("recovery_p50", "recovery_p99", "recovery_max")
    )
    return (
        f"| {row['scenario']} | {row['submitted']} | {row['lost']} | {duplicates} "
        f"| {row['stuck']} | {recovery} "
        f"| {row['overbookings']} / {row['double_acceptances']} "
        f"| {_maybe(row['calls_while_open'])} / {_maybe(row['calls_while_halted'])} "
        f"| {row['throughput']:.1f} |"
    )
