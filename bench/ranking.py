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
import statistics
import time
from collections import Counter, defaultdict
from contextlib import contextmanager

from bench.bulk_invite import next_job_id, statement_kinds
from bench.fanout import FROM_EMAIL, draft
from bench.stack import configure_sandbox_providers, sandbox_reset, sandbox_stats

SINKS = ("smtp", "sendgrid")
WARMUP = 200
COUNTED = 200
COUNTED_SENDS = 40


# --- Counting Redis round trips -----------------------------------------------------------------
class RedisCalls:
    """Redis traffic of this process while active: socket writes (each one request/response
    round trip: a command, a whole pipeline, a health-check PING, a reconnect's handshake) and
    the commands behind them by name (a pipeline as ``pipeline[HMGET,GET,...]``)."""

    def __init__(self) -> None:
        self.round_trips = 0
        self.commands: Counter[str] = Counter()

    @contextmanager
    def active(self):
        from redis.client import Pipeline, Redis
        from redis.connection import AbstractConnection

        real_send = AbstractConnection.send_packed_command
        real_execute = Redis.execute_command
        real_pipeline = Pipeline.execute
        calls = self

        def send_packed_command(connection, *args, **kwargs):
            calls.round_trips += 1
            return real_send(connection, *args, **kwargs)

        def execute_command(client, *args, **options):
            calls.commands[str(args[0]).upper()] += 1
            return real_execute(client, *args, **options)

        def execute(pipe, *args, **kwargs):
            names = ",".join(_compress([str(c[0][0]).upper() for c in pipe.command_stack]))
            calls.commands[f"pipeline[{names}]"] += 1
            return real_pipeline(pipe, *args, **kwargs)

        AbstractConnection.send_packed_command = send_packed_command
        Redis.execute_command = execute_command
        Pipeline.execute = execute
        try:
            yield self
        finally:
            AbstractConnection.send_packed_command = real_send
            Redis.execute_command = real_execute
            Pipeline.execute = real_pipeline


def _compress(names: list[str]) -> list[str]:
    """HMGET,GET,GET,HMGET,GET,GET -> 2x(HMGET,GET,GET) when the pattern repeats."""
    for size in range(1, len(names) // 2 + 1):
        if len(names) % size == 0 and names == names[:size] * (len(names) // size):
            return (
                [f"{len(names) // size}x({','.join(names[:size])})"]
                if size > 1
                else [f"{len(names)}x{names[0]}"]
            )
    return names


@contextmanager
def sql_queries():
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    queries: list[dict] = []
    with CaptureQueriesContext(connection) as context:
        yield queries
    queries.extend(context.captured_queries)


def micro(seconds: list[float]) -> dict:
    ordered = sorted(seconds)

    def at(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1e6

    return {
        "mean_us": statistics.fmean(ordered) * 1e6,
        "p50_us": at(50),
        "p99_us": at(99),
        "max_us": ordered[-1] * 1e6,
    }


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
class StageTimes:
    """Time spent in each stage of the send path, by wrapping the functions it calls (only the
    outermost call of a stage counts, should one stage's function call another's)."""

    STAGES = (
        ("halt check", "sending", "is_halted"),
        ("halt check", "freshness", "is_halted"),
        ("claim", "outbox", "claim_many"),
        ("selection", "ranking", "select"),
        ("quota reservation", "provider_state", "reserve"),
        ("record sent (SQL)", "outbox", "record_accepted"),
        ("record outcome (Redis)", "sending", "note_outcome"),
    )

    def __init__(self) -> None:
        self.seconds: defaultdict[str, float] = defaultdict(float)
        self.calls: Counter[str] = Counter()
        self.depth: Counter[str] = Counter()
        self.job_seconds: list[float] = []  # per job: ranking, provider calls, recording

    def _wrap(self, stage: str, function):
        def timed(*args, **kwargs):
            if self.depth[stage]:
                return function(*args, **kwargs)
            self.depth[stage] += 1
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[stage] += time.perf_counter() - started
                self.calls[stage] += 1
                self.depth[stage] -= 1

        return timed

    @contextmanager
    def active(self):
        from delivery import calls, freshness, outbox, provider_state, ranking, sending

        modules = {
            "sending": sending,
            "freshness": freshness,
            "outbox": outbox,
            "ranking": ranking,
            "provider_state": provider_state,
        }
        saved = []
        for stage, module_name, name in self.STAGES:
            module = modules[module_name]
            if hasattr(module, name):
                saved.append((module, name, getattr(module, name)))
                setattr(module, name, self._wrap(stage, getattr(module, name)))
        real_adapter_for = calls.adapter_for
        real_send_one = sending.BatchSend.send_one
        stages = self

        class TimedAdapter:
            def __init__(self, adapter) -> None:
                self.adapter = adapter

            def send(self, message):
                return stages._wrap("provider call", self.adapter.send)(message)

            def send_batch(self, messages):
                return stages._wrap("provider call", self.adapter.send_batch)(messages)

            def __getattr__(self, name):  # max_batch, batch_key: the real adapter's
                return getattr(self.adapter, name)

        def send_one(*args, **kwargs):
            started = time.perf_counter()
            try:
                return real_send_one(*args, **kwargs)
            finally:
                self.job_seconds.append(time.perf_counter() - started)

        timed_adapter_for = lambda provider: TimedAdapter(real_adapter_for(provider))  # noqa: E731
        calls.adapter_for = sending.adapter_for = timed_adapter_for
        sending.BatchSend.send_one = send_one
        try:
            yield self
        finally:
            calls.adapter_for = sending.adapter_for = real_adapter_for
            sending.BatchSend.send_one = real_send_one
            for module, name, original in saved:
                setattr(module, name, original)


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

    calls = RedisCalls()
    with calls.active(), sql_queries() as queries:
        for start in range(0, len(counted), batch):
            jobs_send(job_ids=counted[start : start + batch])

    stages = StageTimes()
    with stages.active():
        started = time.perf_counter()
        for start in range(0, len(measured), batch):
            jobs_send(job_ids=measured[start : start + batch])
        seconds = time.perf_counter() - started

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
        "per_job_provider_phase_ms": {
            k.replace("_us", "_ms"): v / 1000 for k, v in micro(stages.job_seconds).items()
        }
        if stages.job_seconds
        else None,
        "stages_ms_per_message": {
            **{stage: total * 1000 / count for stage, total in stages.seconds.items()},
            "the rest": (seconds - sum(stages.seconds.values())) * 1000 / count,
        },
        "stage_calls_per_message": {stage: n / count for stage, n in stages.calls.items()},
        "selection_in_send_us": stages.seconds["selection"] * 1e6 / count,
        "redis_round_trips_per_message": calls.round_trips / len(counted),
        "redis_commands_per_message": {k: v / len(counted) for k, v in calls.commands.items()},
        "sql_queries_per_message": len(queries) / len(counted),
        "sql_query_kinds_per_message": {
            k: v / len(counted) for k, v in statement_kinds(queries).items()
        },
        "check": f"{sent}/{len(ids)} sent, {attempts} attempts, {accepted} accepted by the sink",
        "ok": sent == len(ids) == attempts == accepted,
    }
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
    return result


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
