"""Benchmark 6, one slow provider (issue #14): does it slow the system?

The full pipeline (two Celery workers with a pool of two each, beat, PostgreSQL, Redis, the
sandbox), GPMAS's default settings. Each scenario sends N messages with every provider answering
in 20 ms, then N more with one provider 75x slower (1.5 s, well inside the read timeout),
without resetting anything in between: the provider just got slow; then N more with that
provider switched off. The figures: the slow run's messages a second over the all-fast run's
and over the switched-off run's, the slow provider's share of the calls, and the most of its
calls running at once (when it turns slow, the calls it already has run their course).

On this 2-core machine the runs are CPU-bound, and the emulators do not cost the same CPU per
message (SES goes through moto, SMTP through a one-thread sink): when traffic moves between
kinds, the rate moves with their cost. So the scenarios that measure routing alone use
providers of one kind, Mailgun rows on different sending domains, each domain with its own
latency in the sandbox; the mixed one (Mailgun slowing beside SMTP) is the operator's case.
"""

from __future__ import annotations

import os
import statistics
from collections import Counter

from bench.fanout import FROM_EMAIL, draft
from bench.processes import start_beat, start_workers
from bench.stack import configure_sandbox_providers, sandbox_reset, wait_until
from bench.window import Window

FAST_MS, SLOW_MS = 20, 1500
DOMAINS = {"mg-a": "a.gpmas.local", "mg-b": "b.gpmas.local", "mg-c": "c.gpmas.local"}
# title, provider weights (by name), the provider that slows down
SCENARIOS = [
    ("2 Mailgun domains, equal weights", {"mg-a": 1, "mg-b": 1}, "mg-a"),
    ("3 Mailgun domains, the slow one weighted 3:1:1", {"mg-a": 3, "mg-b": 1, "mg-c": 1}, "mg-a"),
    (
        "Mailgun beside SMTP, equal weights",
        {"sandbox-mailgun": 1, "sandbox-smtp": 1},
        "sandbox-mailgun",
    ),
]


def fault_key(name: str) -> str:
    from delivery.models import Provider

    provider = Provider.objects.get(name=name)
    return f"mailgun:{provider.domain}" if provider.kind == "mailgun" else provider.kind


def set_latency(latencies: dict[str, int]) -> None:
    from sandbox import config
    from sandbox.client import SandboxClient

    client = SandboxClient(config.load().http_url)
    for name, ms in latencies.items():
        client.set_fault(fault_key(name), latency_ms=ms)


def add_mailgun_domains() -> None:
    """One Mailgun provider row per sending domain, its secret where the workers read it."""
    from delivery.models import Provider
    from delivery.providers import secret_variable
    from sandbox import config

    sandbox = config.load()
    for name, domain in DOMAINS.items():
        os.environ[secret_variable(name, "API_KEY")] = sandbox.api_key
        Provider.objects.update_or_create(
            name=name,
            defaults={"kind": "mailgun", "domain": domain, "api_base_url": sandbox.http_url},
        )


def use_providers(weights: dict[str, int]) -> None:
    from delivery import provider_state
    from delivery.models import Provider

    for provider in Provider.objects.all():
        provider.enabled = provider.name in weights
        provider.weight = weights.get(provider.name, 0)
        provider.save()
        provider_state.reset(provider)


def send(count: int, first: int) -> dict:
    """Write ``count`` jobs while halted, resume, and time them until the last is sent."""
    from django.db.models import Max

    from delivery.models import DeliveryAttempt, EmailJob
    from delivery.services import EmailDraft, email_enqueue
    from reliability.halt import system_halt, system_resume

    system_halt(reason="benchmark: writing the queue", source="bench")
    jobs = email_enqueue(
        EmailDraft(kind="test", from_email=FROM_EMAIL, **draft(first + i)) for i in range(count)
    )
    ids = [job.pk for job in jobs]
    sent = EmailJob.objects.filter(pk__in=ids, status=EmailJob.Status.SENT)
    with Window() as window:
        system_resume(reason="benchmark: go", source="bench")
        wait_until(
            lambda: sent.count() >= count,
            timeout=max(300, count),
            interval=0.25,
            what=f"{count} jobs sent",
        )
    seconds = sent.aggregate(last=Max("finished_at"))["last"].timestamp() - window.started
    attempts = DeliveryAttempt.objects.filter(job_id__in=ids)
    calls = Counter(attempts.values_list("provider__name", flat=True))
    durations: dict[str, list[int]] = {}
    for name, ms in attempts.values_list("provider__name", "duration_ms"):
        durations.setdefault(name, []).append(ms)
    return {
        "messages": count,
        "seconds": seconds,
        "per_second": count / seconds,
        "attempts": sum(calls.values()),
        "share": {name: n / sum(calls.values()) for name, n in calls.items()},
        "p50_ms": {name: statistics.median(ms) for name, ms in durations.items()},
        "at_once": {name: most_at_once(attempts.filter(provider__name=name)) for name in calls},
    }


def most_at_once(attempts) -> int:
    """The most of these calls that were running at the same moment."""
    edges = []
    for started, ms in attempts.values_list("started_at", "duration_ms"):
        edges += [(started.timestamp(), 1), (started.timestamp() + ms / 1000, -1)]
    running = most = 0
    for _, step in sorted(edges):
        running += step
        most = max(most, running)
    return most


def scenario(weights: dict[str, int], slow: str, count: int, first: int) -> dict:
    """All fast; one slow; then the slow one switched off (what the others do alone)."""
    sandbox_reset()
    use_providers(weights)
    set_latency(dict.fromkeys(weights, FAST_MS))
    fast = send(count, first)
    set_latency({slow: SLOW_MS})
    slowed = send(count, first + count)
    use_providers({name: w for name, w in weights.items() if name != slow})
    without = send(count, first + 2 * count)
    set_latency(dict.fromkeys(weights, FAST_MS))
    return {
        "weights": weights,
        "slow": slow,
        "all fast": fast,
        "one slow": slowed,
        "without it": without,
        "ratio": slowed["per_second"] / fast["per_second"],
        "ratio_to_without": slowed["per_second"] / without["per_second"],
    }


def run(count: int = 4000) -> dict:
    configure_sandbox_providers()
    add_mailgun_domains()
    workers = [*start_workers(2, concurrency=2), start_beat()]
    results = {}
    try:
        for index, (title, weights, slow) in enumerate(SCENARIOS):
            result = scenario(weights, slow, count, first=index * 3 * count)
            results[title] = result
            print_result(title, result)
    finally:
        for worker in workers:
            worker.stop()
    return results


def print_result(title: str, result: dict) -> None:
    slow, fast, slowed = result["slow"], result["all fast"], result["one slow"]
    print(
        f"  {title}: all fast {fast['per_second']:.0f} msg/s, one slow "
        f"{slowed['per_second']:.0f} ({result['ratio']:.2f}x), the slow one off "
        f"{result['without it']['per_second']:.0f} (slow / off {result['ratio_to_without']:.2f}x);"
        f" its share {fast['share'].get(slow, 0):.0%} -> {slowed['share'].get(slow, 0):.1%},"
        f" at most {slowed['at_once'].get(slow, 0)} of its calls at once",
        flush=True,
    )
