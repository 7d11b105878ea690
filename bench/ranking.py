"""Benchmark 4, provider selection: its Redis round trips and time, as a share of one send.

Needs the sandbox running (``processes.start_sandbox()``); the four sandbox provider rows are
configured here. Two parts, both in this process:

- Selection alone: ``delivery.ranking.select()`` with the four sandbox providers enabled (as the
  dev stack deploys them), healthy, a daily quota on each; both as it reads the provider rows
  itself and, where the send path hands it the rows it read once per batch, in that form.
  Counted over a few hundred calls: Redis round trips (every command or pipeline that goes to
  the socket, health checks and reconnects included) and SQL queries per call. Timed over many
  calls, without the counters: mean, p50, p99 in microseconds, and the same for its three parts
  (the provider rows from the database, their live state from Redis, the weighted draw).
- One send: ``delivery.sending.jobs_send`` on jobs written by ``email_enqueue``, in batches
  of the drain's batch size, exactly as a worker runs a ``send_jobs`` task, with exactly one
  provider enabled: the SMTP sink, then the SendGrid emulator. Per message: wall time (batch
  time / messages, what a worker spends per message), time spent in each stage of the send path
  (halt checks, claim, selection, quota reservation, the provider call, recording, the rest),
  the distribution of the per-job part (``_try_providers``: ranking, calls, recording), Redis
  round trips and SQL queries. Selection is reported as a share of the send, both measured
  alone with four providers and as timed inside the send with one.
"""

from __future__ import annotations

import inspect
import time
from contextlib import contextmanager

from bench.bulk_invite import statement_kinds
from bench.fanout import FROM_EMAIL, draft
from bench.instruments import RedisCalls, StageTimes, micro, sql_queries
from bench.rows import next_job_id
from bench.stack import configure_sandbox_providers, sandbox_reset, sandbox_stats

SINKS = ("smtp", "sendgrid")
WARMUP = 200
COUNTED = 200
COUNTED_SENDS = 40


# --- Providers --------------------------------------------------------------------------------
def sandbox_providers():
    from delivery.models import Provider

    return list(Provider.objects.filter(name__startswith="sandbox-").order_by("name"))


def providers_set(enabled_kinds: tuple[str, ...]) -> None:
    """Exactly the sandbox providers of these kinds enabled, with their sandbox weights and a
    daily quota that never binds (so the quota path runs), their live state forgotten."""
    from delivery import provider_state
    from delivery.models import Provider
    from sandbox.providers import SANDBOX_PROVIDERS

    Provider.objects.exclude(name__startswith="sandbox-").update(enabled=False)
    for provider in sandbox_providers():
        provider.enabled = provider.kind in enabled_kinds
        provider.weight = SANDBOX_PROVIDERS[provider.name][1]
        provider.daily_quota = 10_000_000
        provider.save()
        provider_state.reset(provider)


@contextmanager
def providers_restored():
    from delivery.models import Provider

    fields = ("enabled", "weight", "daily_quota")
    saved = {p.pk: {f: getattr(p, f) for f in fields} for p in Provider.objects.all()}
    try:
        yield
    finally:
        for pk, values in saved.items():
            Provider.objects.filter(pk=pk).update(**values)


# --- Selection alone ----------------------------------------------------------------------------
def counted(call) -> dict:
    """Redis round trips and SQL queries per call of ``call``, over COUNTED calls."""
    calls = RedisCalls()
    with calls.active(), sql_queries() as queries:
        for _ in range(COUNTED):
            call()
    return {
        "redis_round_trips": calls.round_trips / COUNTED,
        "redis_commands": {k: v / COUNTED for k, v in calls.commands.items()},
        "sql_queries": len(queries) / COUNTED,
        "sql_query_kinds": {k: v / COUNTED for k, v in statement_kinds(queries).items()},
    }


def timed(call, count: int) -> dict:
    seconds = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - started)
    return micro(seconds)


def selection(count: int) -> dict:
    """``select()`` as it reads the provider rows itself, and, where the send path hands it the
    rows it read once per batch (``select(providers)``), that form too."""
    from delivery import provider_state, ranking
    from delivery.models import Provider

    providers_set(SINKS + ("ses", "mailgun"))
    rows = list(Provider.objects.filter(enabled=True))
    forms = {"select()": ranking.select}
    if "providers" in inspect.signature(ranking.select).parameters:
        forms["select(providers)"] = lambda: ranking.select(rows)
    for call in forms.values():
        for _ in range(WARMUP):
            chosen = call()
        if len(chosen.providers) != len(rows) or len(rows) != 4:
            raise RuntimeError(f"{len(chosen.providers)} providers selected of {len(rows)}")
    at = provider_state.now()
    views = provider_state.read_views(rows, at=at)
    enabled = Provider.objects.filter(enabled=True)
    result = {
        "providers": len(rows),
        "selections": count,
        "forms": {name: {**counted(call), **timed(call, count)} for name, call in forms.items()},
        "parts": {
            "provider rows (SQL)": timed(lambda: list(enabled.all()), count),
            "live state (Redis)": timed(lambda: provider_state.read_views(rows, at=at), count),
            "weighted draw (Python)": timed(lambda: ranking.order(rows, views, at=at), count),
        },
    }
    for name, form in result["forms"].items():
        print(
            f"  {name:<17} over {len(rows)} providers: {form['redis_round_trips']:g} Redis "
            f"round trip(s), {form['sql_queries']:g} SQL queries; mean {form['mean_us']:.0f} us, "
            f"p50 {form['p50_us']:.0f} us, p99 {form['p99_us']:.0f} us ({count} calls)",
            flush=True,
        )
    for name, part in result["parts"].items():
        print(
            f"    {name:<24} mean {part['mean_us']:6.0f} us, p99 {part['p99_us']:6.0f} us",
            flush=True,
        )
    return result


# --- One send -----------------------------------------------------------------------------------
def drafts(count: int):
    from delivery.services import EmailDraft

    return [EmailDraft(kind="test", from_email=FROM_EMAIL, **draft(i)) for i in range(count)]


def send(kind: str, count: int) -> dict:
    from django.conf import settings

    from delivery.models import EmailJob
    from delivery.sending import jobs_send
    from delivery.services import email_enqueue

    providers_set((kind,))
    sandbox_reset()
    first = next_job_id()
    batch = settings.GPMAS_DRAIN_BATCH_SIZE
    warmup = batch
    email_enqueue(drafts(warmup + COUNTED_SENDS + count))
    ids = list(EmailJob.objects.filter(pk__gte=first).order_by("pk").values_list("pk", flat=True))
    warm, counted, measured = ids[:warmup], ids[warmup : warmup + COUNTED_SENDS], ids[-count:]
    jobs_send(job_ids=warm)
    calls, queries = counted_sends(counted, batch)
    stages, seconds = timed_sends(measured, batch)

    jobs = EmailJob.objects.filter(pk__in=ids)
    sent = jobs.filter(status=EmailJob.Status.SENT).count()
    attempts = sum(jobs.values_list("attempts", flat=True))
    accepted = sandbox_stats()[kind]["messages"]
    jobs.delete()
    per_message = seconds / count
    result = {
        "sink": kind,
        "messages": count,
        "batch_size": batch,
        "seconds": seconds,
        "per_message_ms": per_message * 1000,
        "messages_per_second": count / seconds,
        **stage_figures(stages, seconds, count),
        **traffic_figures(calls, queries, len(counted)),
        "check": f"{sent}/{len(ids)} sent, {attempts} attempts, {accepted} accepted by the sink",
        "ok": sent == len(ids) == attempts == accepted,
    }
    report_send(kind, result)
    return result


def counted_sends(job_ids: list[int], batch: int) -> tuple[RedisCalls, list[dict]]:
    """Send these jobs in batches with the Redis and SQL counters on."""
    from delivery.sending import jobs_send

    calls = RedisCalls()
    with calls.active(), sql_queries() as queries:
        for start in range(0, len(job_ids), batch):
            jobs_send(job_ids=job_ids[start : start + batch])
    return calls, queries


def timed_sends(job_ids: list[int], batch: int) -> tuple[StageTimes, float]:
    """Send these jobs in batches with the stages timed; the seconds all the batches took."""
    from delivery.sending import jobs_send

    stages = StageTimes()
    with stages.active():
        started = time.perf_counter()
        for start in range(0, len(job_ids), batch):
            jobs_send(job_ids=job_ids[start : start + batch])
        seconds = time.perf_counter() - started
    return stages, seconds


def stage_figures(stages: StageTimes, seconds: float, count: int) -> dict:
    return {
        "stages_ms_per_message": {
            **{stage: total * 1000 / count for stage, total in stages.seconds.items()},
            "the rest": (seconds - sum(stages.seconds.values())) * 1000 / count,
        },
        "stage_calls_per_message": {stage: n / count for stage, n in stages.calls.items()},
        "selection_in_send_us": stages.seconds["selection"] * 1e6 / count,
    }


def traffic_figures(calls: RedisCalls, queries: list[dict], count: int) -> dict:
    return {
        "redis_round_trips_per_message": calls.round_trips / count,
        "redis_commands_per_message": {k: v / count for k, v in calls.commands.items()},
        "sql_queries_per_message": len(queries) / count,
        "sql_query_kinds_per_message": {k: v / count for k, v in statement_kinds(queries).items()},
    }


def report_send(kind: str, result: dict) -> None:
    print(
        f"  send to {kind:<8}: {result['per_message_ms']:.2f} ms per message "
        f"({result['messages_per_second']:.0f}/s, one process); "
        f"{result['redis_round_trips_per_message']:g} Redis round trips, "
        f"{result['sql_queries_per_message']:g} SQL queries per message; {result['check']}",
        flush=True,
    )
    stage_line = ", ".join(
        f"{stage} {ms:.3f}" for stage, ms in result["stages_ms_per_message"].items()
    )
    print(f"    ms per message: {stage_line}", flush=True)


# --- The benchmark ----------------------------------------------------------------------------
def run(selections: int = 5000, sends: int = 500) -> dict:
    try:
        sandbox_stats()
    except Exception as exc:
        raise RuntimeError(f"the sandbox does not answer ({exc}); start it first") from None
    configure_sandbox_providers()
    with providers_restored():
        alone = selection(selections)
        sinks = [send(kind, sends) for kind in SINKS]
    # The form the send path uses: with the rows handed in where it can be, else reading them.
    form = "select(providers)" if "select(providers)" in alone["forms"] else "select()"
    mean_us = alone["forms"][form]["mean_us"]
    for row in sinks:
        send_us = row["per_message_ms"] * 1000
        row["selection_alone_form"] = form
        row["selection_share_percent"] = 100 * mean_us / send_us
        row["selection_in_send_share_percent"] = 100 * row["selection_in_send_us"] / send_us
        print(
            f"  selection / send to {row['sink']}: {row['selection_share_percent']:.1f} % "
            f"({form} alone, 4 providers: {mean_us:.0f} us of {send_us:.0f} us per message); "
            f"timed inside the send (1 provider): {row['selection_in_send_us']:.0f} us, "
            f"{row['selection_in_send_share_percent']:.1f} %",
            flush=True,
        )
    return {"selection": alone, "sends": sinks}
