"""Benchmark 7, the latency world (issue #15, item 2): N invitations handed to a provider that
answers in 150 ms (SendGrid, Mailgun: per call) or 50 ms (SMTP: per message), as real ones do.

The sandbox's latency fault is per provider, per call for the HTTP APIs, and concurrent calls
wait it side by side (tests/sandbox/test_sandbox_latency.py). SMTP goes to the latency relay
(bench/latency_sink.py) instead of the sandbox's sink, whose parsing was the ceiling: 50 ms per
message, and a check that every guest got exactly its one message. The clock stops at the
emulator's (or the relay's) record of its last acceptance (``GET /api/last-accepted``).
Contestants:

- GPMAS: an organizer invites N guests through the real invite page (preview, then the confirming
  POST); the clock starts at that POST. Two Celery workers with a pool of two each and beat, as
  the fan-out benchmark runs them, every mechanism on (drain, ranking, quota, halt check, leases,
  attempts, batch calls: SendGrid personalizations, Mailgun recipient-variables and SES
  SendBulkEmail (SES also measured with it off, one SendEmail per message), and
  GPMAS_CALLS_IN_FLIGHT calls in flight per pool process).
- django-post-office with its default threads (one process, five threads, batches of 100),
  through django-anymail's SendGrid or Mailgun backend pointed at the emulator (one call per
  message, as anymail sends), or Django's SMTP backend; the clock starts at ``send_many``.
- a bare SDK loop (sendgrid, mailgun, smtplib) with as many connections as GPMAS keeps in flight
  (processes x calls in flight), one message per call, nothing recorded.
- for SMTP, the limit that connection count sets: connections / latency.

The peers take minutes at 10,000 one-by-one calls of 150 ms: they are measured on at most
``--peer-messages`` (default 1,000) and their time for N is extrapolated from their rate, which
the table says.
"""

from __future__ import annotations

import os
import time
import warnings

from bench import cpu
from bench import latency_peers as peers
from bench.bulk_invite import Organizer, pasted
from bench.fanout import POOL, WORKERS, _only_provider
from bench.processes import start_beat, start_workers
from bench.rows import delete_since, next_job_id
from bench.stack import configure_sandbox_providers, steal_jiffies, wait_until

LATENCY_MS = {"sendgrid": 150, "mailgun": 150, "smtp": 50, "ses": 80}
PROVIDERS = ("sendgrid", "mailgun", "smtp")  # the default; SES on request (--providers ses)
TARGET_SECONDS = 10.0  # SendGrid or Mailgun, 10,000 invitations (issue #15)


def calls_in_flight() -> int:
    from django.conf import settings

    return settings.GPMAS_CALLS_IN_FLIGHT


def gpmas_run(kind: str, count: int, workers=()) -> dict:
    """One organizer's bulk invite of ``count`` guests, until the provider accepted them all."""
    from delivery.models import EmailJob
    from sandbox.providers import SANDBOX_PROVIDERS

    name = next(n for n, (k, _) in SANDBOX_PROVIDERS.items() if k == kind)
    provider = _only_provider(name)
    sandbox = peers.sandbox_with_latency(kind, LATENCY_MS[kind])
    if kind == "smtp":  # the latency relay, not the sandbox's sink (bench/latency_sink.py)
        provider.port = peers.smtp_relay(LATENCY_MS[kind]).port
        provider.save()
    first_job = next_job_id()
    organizer = Organizer(f"latency-{kind}")
    _, canonical = organizer.preview(pasted(count))
    cpu = CpuByPart(workers)
    started = time.time()
    organizer.confirm(canonical)
    request_seconds = time.time() - started
    cpu.request_done()
    last = peers.wait_for_acceptance(sandbox, kind, count, started)
    cpu_parts = cpu.stop()
    jobs = EmailJob.objects.filter(pk__gte=first_job, kind="invitation")
    wait_until(
        lambda: jobs.filter(status=EmailJob.Status.SENT).count() >= count,
        timeout=60,
        interval=0.25,
        what="the jobs recorded as sent",
    )
    stats = sandbox.stats()[kind]
    attempts = sum(jobs.values_list("attempts", flat=True))
    phases = _phases(jobs, started)
    if kind == "smtp":
        phases_note = _calls_note(jobs, phases)
    delete_since(organizer.user, first_job)
    delivered, verdict = peers.check_relay(sandbox, count)
    if kind == "smtp":
        verdict += f"; {phases_note}"
    return {
        "seconds": last - started,
        "request_seconds": request_seconds,
        "phases": phases,
        "calls": stats["calls"],
        "cpu_seconds": cpu_parts,
        "check": f"{count} sent, {attempts} attempts, {stats['messages']} at the emulator in "
        f"{stats['calls']} calls; from the POST: request done {request_seconds:.1f} s, "
        + ", ".join(
            f"{k.replace('_', ' ')} {v:.1f}{'' if k.startswith('calls') else ' s'}"
            for k, v in phases.items()
            if v
        )
        + "; CPU s: "
        + ", ".join(f"{k.replace('_', ' ')} {v:.1f}" for k, v in cpu_parts.items())
        + (f"; {verdict}" if verdict else ""),
        "ok": attempts == count and stats["messages"] == count and delivered,
    }


class CpuByPart:
    """Where the CPU went: the invite request (this process), then while sending the workers,
    the emulators, PostgreSQL and Redis (shared servers count whatever else ran meanwhile)."""

    def __init__(self, workers) -> None:
        from django.conf import settings

        self.redis_url = settings.REDIS_URL
        self.workers = [worker.popen.pid for worker in workers]
        self.started = time.process_time()
        self.request = 0.0

    def _servers(self) -> dict[str, float]:
        from bench.processes import sandbox_pid

        return {
            "workers": sum(cpu.tree_seconds(pid) for pid in self.workers),
            "emulator": cpu.tree_seconds(sandbox_pid()),
            "postgresql": cpu.named_seconds("postgres"),
            "redis": cpu.redis_seconds(self.redis_url),
        }

    def request_done(self) -> None:
        self.request = time.process_time() - self.started
        self.sending_started = self._servers()

    def stop(self) -> dict[str, float]:
        now = self._servers()
        return {"request": self.request} | {
            f"sending_{name}": now[name] - self.sending_started[name] for name in now
        }


def _phases(jobs, started: float) -> dict:
    """Where the time went, in seconds from the organizer's POST: the drain's first and last
    publication (``dispatched_at``), the first and last provider call started (attempts)."""
    from django.db.models import Max, Min

    from delivery.models import DeliveryAttempt

    dispatched = jobs.aggregate(first=Min("dispatched_at"), last=Max("dispatched_at"))
    calls = DeliveryAttempt.objects.filter(job__in=jobs).aggregate(
        first=Min("started_at"), last=Max("started_at")
    )
    attempts = DeliveryAttempt.objects.filter(job__in=jobs).order_by("started_at")
    total = attempts.count()
    moments = {
        "first_dispatch": dispatched["first"],
        "last_dispatch": dispatched["last"],
        "first_call": calls["first"],
        # When each quarter of the messages' calls had started: a steady rate, or a stall?
        **{
            f"call_{q}_percent": attempts.values_list("started_at", flat=True)[total * q // 100]
            for q in (25, 50, 75)
            if total
        },
        "last_call": calls["last"],
    }
    phases = {k: v.timestamp() - started if v else None for k, v in moments.items()}
    # One batch call's attempts share their start and duration: the calls, and how many were
    # in flight on average between the first call's start and the last one's end.
    calls = set(attempts.values_list("started_at", "duration_ms", "provider_id"))
    if calls:
        begin = min(start for start, _, _ in calls).timestamp()
        end = max(start.timestamp() + ms / 1000 for start, ms, _ in calls)
        phases["calls_in_flight_on_average"] = sum(ms for _, ms, _ in calls) / 1000 / (end - begin)
    return phases


def _calls_note(jobs, phases: dict) -> str:
    """SMTP: how long a call took (the relay's 50 ms plus the round trips and the message's
    rendering on the call's thread), and how busy GPMAS kept its connections between its first
    and last call."""
    import statistics

    from delivery.models import DeliveryAttempt

    # One call's attempts (several messages since SMTP calls carry up to 4) share its start.
    calls = set(
        DeliveryAttempt.objects.filter(job__in=jobs).values_list(
            "started_at", "duration_ms", "provider_id"
        )
    )
    ms = [duration for _, duration, _ in calls]
    span = (phases["last_call"] or 0) - (phases["first_call"] or 0)
    connections = WORKERS * POOL * calls_in_flight()
    busy = sum(ms) / 1000 / (connections * span) if span > 0 else 0
    return (
        f"{len(calls)} calls, p50 {statistics.median(ms):.0f} ms, p90"
        f" {statistics.quantiles(ms, n=10)[-1]:.0f} ms; connections in a call {busy:.0%} of the"
        " time between the first and last call"
    )


def run(count: int, peer_messages: int = 1000, kinds=PROVIDERS) -> list[dict]:
    unknown = set(kinds) - set(LATENCY_MS)
    if unknown:
        raise ValueError(f"no latency run for {', '.join(sorted(unknown))}")
    warnings.filterwarnings("ignore", message="No directory at", module="django.core.handlers")
    configure_sandbox_providers()
    connections = WORKERS * POOL * calls_in_flight()
    peer_count = min(count, peer_messages)
    rows: list[dict] = []
    ticks = [steal_jiffies()]

    def measure(kind: str, contestant: str, result: dict, measured: int) -> None:
        # Other work on the machine shows in CPU-bound parts (the invite request, parsing):
        # the one-minute load average at the end of each run says how much there was here,
        # the share of busy time stolen by the host since the last row how much elsewhere.
        result["load_average"] = round(os.getloadavg()[0], 1)
        result["steal_share"] = _steal_share(ticks)
        rate = measured / result["seconds"]
        result.update(
            provider=kind,
            latency_ms=LATENCY_MS[kind],
            contestant=contestant,
            messages=count,
            measured_messages=measured,
            per_second=rate,
            seconds_for_all=count / rate if measured < count else result["seconds"],
        )
        rows.append(result)
        note = "" if measured == count else f", {measured} measured, time for {count} extrapolated"
        print(
            f"  {kind:<8} {contestant:<44} {result['seconds_for_all']:>7.1f} s "
            f"{rate:>7.0f} msg/s  ({result['check']}{note}; load {result['load_average']}"
            f", steal {result['steal_share']})",
            flush=True,
        )

    processes = [*start_workers(WORKERS, concurrency=POOL), start_beat()]
    try:
        gpmas = f"GPMAS ({WORKERS} workers x {POOL}, {calls_in_flight()} calls in flight each)"
        for kind in kinds:
            measure(kind, gpmas, gpmas_run(kind, count, processes[:WORKERS]), count)
        if "ses" in kinds:
            processes = ses_one_by_one(processes, peer_count, gpmas, measure)
    finally:
        for process in processes:
            process.stop()
    # SES has no peer row: post-office with anymail's SES backend would need SendBulkEmail too.
    for kind in (k for k in kinds if k != "ses"):
        latency = LATENCY_MS[kind]
        measure(
            kind,
            "django-post-office send_queued (5 threads)" + (" + anymail" if kind != "smtp" else ""),
            peers.post_office_run(kind, peer_count, latency),
            peer_count,
        )
        measure(
            kind,
            f"bare {peers.SDK[kind]} loop ({connections} connections)",
            peers.bare_run(kind, peer_count, latency, connections),
            peer_count,
        )
        if kind == "smtp":
            limit = connections / (latency / 1000)
            rows.append(
                {
                    "provider": kind,
                    "latency_ms": latency,
                    "contestant": f"limit: {connections} connections / {latency} ms",
                    "messages": count,
                    "measured_messages": 0,
                    "per_second": limit,
                    "seconds_for_all": count / limit,
                    "check": "computed",
                    "ok": True,
                }
            )
    peers.stop_smtp_relay()
    for row in rows:
        gpmas_row = next(r for r in rows if r["provider"] == row["provider"])
        row["gpmas_ratio"] = gpmas_row["per_second"] / row["per_second"]
    return rows


def _steal_share(ticks: list) -> str:
    """The share of the machine's busy time the host stole since ``ticks[0]``, which moves on."""
    before, now = ticks[0], steal_jiffies()
    ticks[0] = now
    if before is None or now is None or now[0] == before[0]:
        return "unknown"
    return f"{(now[1] - before[1]) / (now[0] - before[0]):.0%}"


def ses_one_by_one(processes: list, messages: int, gpmas: str, measure) -> list:
    """GPMAS again with SendBulkEmail off (``GPMAS_SES_BATCH_SIZE=1``: one SendEmail per
    message), on ``messages`` and extrapolated like a peer; its workers replace the batching
    ones. Returns the processes now running."""
    workers, rest = processes[:WORKERS], processes[WORKERS:]
    for worker in workers:
        worker.stop()
    workers = start_workers(WORKERS, concurrency=POOL, label="sendemail", GPMAS_SES_BATCH_SIZE="1")
    contestant = f"{gpmas}, one SendEmail per message"
    measure("ses", contestant, gpmas_run("ses", messages, workers), messages)
    return [*workers, *rest]


def print_table(rows: list[dict]) -> None:
    columns = ("provider, latency", "contestant", "seconds for all", "msg/s", "GPMAS / this")
    print("\n| " + " | ".join(columns) + " | measured on |")
    print("|---|---|---:|---:|---:|---|")
    for row in rows:
        measured = row["measured_messages"]
        on = (
            "computed"
            if not measured
            else f"{measured:,}" + ("" if measured == row["messages"] else " (extrapolated)")
        )
        print(
            f"| {row['provider']}, {row['latency_ms']} ms | {row['contestant']} | "
            f"{row['seconds_for_all']:.1f} | {row['per_second']:,.0f} | "
            f"{row['gpmas_ratio']:.2f}x | {on} |"
        )
