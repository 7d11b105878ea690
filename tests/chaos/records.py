"""What the chaos checker (tests/chaos/checker.py) reads and reports: the jobs, attempts and
emulator captures of a scenario as plain values, the duplicates it finds, and the report's row.
The checker's docstring defines the report's columns."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from tests.chaos.table import markdown_row

TERMINAL = {"sent", "failed", "cancelled"}
WAITING = {"queued", "retrying"}
CRASH_CAUSE = "crash after provider accepted, before commit"
UNEXPLAINED = "unexplained"
# An attempt starts (is stamped) just before the send path's last check of the halt switch and
# the circuit (docs/architecture.md, "Sending"), so one that started more than a moment after a
# halt committed is a violation.
GRACE_SECONDS = 0.25
# A call started before the halt reaches the emulator later, and later still on two busy cores
# with four calls in flight per worker process and the emulators in one process (seen: 0.4 s).
ARRIVAL_GRACE_SECONDS = 1.0


@dataclass(frozen=True)
class Job:
    id: int
    status: str
    created_at: float
    finished_at: float | None
    next_attempt_at: float | None
    lease_expires_at: float | None


@dataclass(frozen=True)
class Attempt:
    job_id: int
    provider: str  # provider kind, "" for a reconciled lease
    started_at: float
    outcome: str
    error_code: str


@dataclass(frozen=True)
class Capture:
    job_id: int
    provider: str
    received_at: float


@dataclass
class Snapshot:
    jobs: list[Job]
    attempts: list[Attempt]
    captures: list[Capture]


@dataclass
class Duplicate:
    job_id: int
    copies: int
    providers: list[str]
    cause: str
    unknown_attempts: list[str]  # error codes of the job's ``unknown`` attempts


@dataclass
class Report:
    scenario: str
    submitted: int
    statuses: dict[str, int]
    lost: int
    duplicates: list[Duplicate]
    stuck: int
    recovery_p50: float | None
    recovery_p99: float | None
    recovery_max: float | None
    overbookings: int = 0
    double_acceptances: int = 0
    calls_while_open: int | None = None
    calls_while_halted: int | None = None
    throughput: float = 0.0
    duration_s: float = 0.0
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def unexplained_duplicates(self) -> int:
        return sum(1 for d in self.duplicates if d.cause == UNEXPLAINED)

    def to_dict(self) -> dict:
        row = asdict(self)
        row["unexplained_duplicates"] = self.unexplained_duplicates
        return row

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    def markdown_row(self) -> str:
        return markdown_row(self.to_dict())
