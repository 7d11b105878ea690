"""Live provider state in Redis, shared by every worker (docs/ranking.md).

Per provider, a hash holds the penalty ``p`` as of time ``t`` (it decays exponentially from there),
consecutive failures, the circuit (``opened`` and ``open_until``: open before it, half-open after),
how often it opened in a row, a rate-limit block, and the latency estimate (seconds per message,
``lat`` as of ``lat_t``). Beside it: a recipient counter per day in the provider's time zone (the
quota), a counter per second (per-second rate limits), a probe token (one message at a time
through a half-open circuit), and the calls in flight (a sorted set of call ids by the time after
which no such call can still be running).

Writes are Lua scripts (``delivery.provider_scripts``) or single atomic commands (a refund's
DECRBY, a reset's DEL), so concurrent workers never lose an update; reading every provider's
state for a selection is one pipelined round trip. Every function takes ``at`` (epoch seconds)
so tests and simulations can drive the clock.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import redis
from django.conf import settings

from delivery.provider_scripts import RECORD_OUTCOME, RESERVE
from delivery.provider_view import ProviderView, view_from_replies
from reliability import redis as project_redis

if TYPE_CHECKING:
    from delivery.models import Provider

QUOTA_KEY_TTL = 3 * 24 * 3600


def _script(source: str):
    # Registering only hashes the source; the script is sent once, then called by its SHA.
    return project_redis.client().register_script(source)


def now() -> float:
    return time.time()


def _key(provider_id: int, *parts: object) -> str:
    return project_redis.key("provider", provider_id, *parts)


def quota_day(tz_name: str, at: float) -> str:
    return dt.datetime.fromtimestamp(at, zoneinfo.ZoneInfo(tz_name or "UTC")).date().isoformat()


def next_quota_reset(tz_name: str, at: float) -> float:
    zone = zoneinfo.ZoneInfo(tz_name or "UTC")
    local = dt.datetime.fromtimestamp(at, zone)
    midnight = dt.datetime.combine(local.date() + dt.timedelta(days=1), dt.time(), tzinfo=zone)
    return midnight.timestamp()


_FIELDS = (
    "p",
    "t",
    "cf",
    "opened",
    "open_until",
    "times_opened",
    "blocked_until",
    "last_error",
    "last_error_at",
    "lat",
)


def read_views(
    providers: Sequence[Provider], *, at: float, along: DeferredWrites | None = None
) -> dict[int, ProviderView]:
    """Every provider's state in one round trip, which also carries the outcomes waiting in
    ``along`` (see ``delivery.freshness.DeferredSuccesses``)."""
    pipe = project_redis.client().pipeline(transaction=False)
    deferred = _queue_deferred(pipe, along)
    for provider in providers:
        pipe.hmget(_key(provider.pk), _FIELDS)
        pipe.get(_key(provider.pk, "quota", quota_day(provider.quota_reset_tz, at)))
        pipe.get(_key(provider.pk, "probe"))
        pipe.zcount(_key(provider.pk, "inflight"), at, "+inf")
        pipe.zrangebyscore(_key(provider.pk, "inflight"), at, "+inf", 0, 1, withscores=True)
    replies = _execute(pipe, deferred)
    return {
        provider.pk: view_from_replies(*replies[5 * i : 5 * i + 5], at)
        for i, provider in enumerate(providers)
    }


@dataclass(frozen=True)
class Grant:
    """The answer of a reservation: granted (and whether as the probe), or why not."""

    ok: bool
    probe: bool = False
    refused_because: str = ""  # open, rate_limited, rate, quota, probing, slow_busy
    call_id: str = ""  # names the call among the provider's calls in flight
    at: float = 0.0  # when it was taken
    recipients: int = 0


def reserve(provider: Provider, *, at: float, recipients: int = 1, alone: bool = False) -> Grant:
    """Take quota (and the probe token of a half-open circuit) before calling the provider, and
    count the call in flight until its outcome is recorded. ``alone``: only if no other call to
    it is in flight (a slow provider gets one call at a time, docs/ranking.md "Latency")."""
    call_id = f"{uuid.uuid4().hex[:16]}:{recipients}"  # the messages the call carries
    ok, detail = _script(RESERVE)(
        keys=[
            _key(provider.pk),
            _key(provider.pk, "quota", quota_day(provider.quota_reset_tz, at)),
            _key(provider.pk, "rate", int(at)),
            _key(provider.pk, "probe"),
            _key(provider.pk, "inflight"),
        ],
        args=[
            at,
            recipients,
            provider.daily_quota if provider.daily_quota is not None else -1,
            provider.max_per_second if provider.max_per_second is not None else -1,
            settings.GPMAS_PROBE_TIMEOUT_SECONDS,
            QUOTA_KEY_TTL,
            call_id,
            1 if alone else -1,
        ],
    )
    if ok:
        return Grant(ok=True, probe=bool(detail), call_id=call_id, at=at, recipients=recipients)
    return Grant(ok=False, refused_because=detail.decode())


def give_back(provider: Provider, grant: Grant) -> None:
    """Undo a reservation whose call was not made after all (a halt seen right after it): its
    quota and rate, its place among the calls in flight, its probe slot."""
    pipe = project_redis.client().pipeline(transaction=False)
    pipe.decrby(
        _key(provider.pk, "quota", quota_day(provider.quota_reset_tz, grant.at)), grant.recipients
    )
    pipe.decrby(_key(provider.pk, "rate", int(grant.at)), grant.recipients)
    pipe.zrem(_key(provider.pk, "inflight"), grant.call_id)
    if grant.probe:
        pipe.delete(_key(provider.pk, "probe"))
    pipe.execute()


def refund(provider: Provider, *, at: float, recipients: int = 1) -> None:
    """Give back quota the provider did not use (it did not take the message)."""
    key = _key(provider.pk, "quota", quota_day(provider.quota_reset_tz, at))
    project_redis.client().decrby(key, recipients)


# One outcome script call, ready to run: its keys and arguments.
OutcomeCall = tuple[list[str], list]
DeferredWrites = list[OutcomeCall]


def record_outcome(
    provider: Provider, outcome: str, *, at: float, along: DeferredWrites | None = None, **details
) -> float:
    """Apply one call's outcome to the provider's penalty and circuit, now (after the deferred
    outcomes in ``along``, so outcomes apply in the order the calls ended). ``details`` are
    ``outcome_call``'s: probe, retry_after, error. Returns the penalty."""
    pipe = project_redis.client().pipeline(transaction=False)
    deferred = _queue_deferred(pipe, along)
    call = outcome_call(provider, outcome, at=at, **details)
    pipe.evalsha(_script(RECORD_OUTCOME).sha, len(call[0]), *call[0], *call[1])
    [penalty] = _execute(pipe, deferred, also=[call])
    return float(penalty)


def write_deferred(along: DeferredWrites) -> None:
    """Write the deferred outcomes now, in one round trip (the end of a batch)."""
    if along:
        pipe = project_redis.client().pipeline(transaction=False)
        _execute(pipe, _queue_deferred(pipe, along))


def outcome_call(
    provider: Provider,
    outcome: str,
    *,
    at: float,
    probe: bool = False,
    retry_after: float | None = None,
    error: str = "",
    call_id: str = "",
    seconds_per_message: float | None = None,
    slow: bool = False,
) -> OutcomeCall:
    """The outcome script's call for one provider call: ``call_id`` leaves the calls in flight,
    ``seconds_per_message`` feeds the latency estimate, ``slow`` (past the latency ceiling)
    makes a success a soft failure."""
    block_for = retry_after if retry_after is not None else settings.GPMAS_RATE_LIMIT_SECONDS
    keys = [_key(provider.pk), _key(provider.pk, "probe"), _key(provider.pk, "inflight")]
    args = [
        at,
        outcome,
        settings.GPMAS_PENALTY_HALF_LIFE_SECONDS,
        settings.GPMAS_OPEN_THRESHOLD,
        settings.GPMAS_BASE_OPEN_SECONDS,
        settings.GPMAS_MAX_OPEN_SECONDS,
        max(0.0, block_for),
        "1" if probe else "0",
        error[:300],
        call_id,
        -1 if seconds_per_message is None else max(0.0, seconds_per_message),
        settings.GPMAS_LATENCY_DECAY_SECONDS,
        "1" if slow else "0",
    ]
    return keys, args


def _queue_deferred(pipe, along: DeferredWrites | None) -> DeferredWrites:
    """Queue ``along``'s outcome scripts first in ``pipe``; they leave ``along`` (taken over)."""
    if not along:
        return []
    taken = along[:]
    along.clear()
    sha = _script(RECORD_OUTCOME).sha
    for keys, args in taken:
        pipe.evalsha(sha, len(keys), *keys, *args)
    return taken


def _execute(pipe, deferred: DeferredWrites, also: DeferredWrites | None = None) -> list:
    """Run a pipeline that starts with outcome scripts; return the replies after ``deferred``.

    The scripts go by their SHA: after a Redis restart that forgot them, they are loaded and the
    outcomes written again (the pipeline's other commands do not depend on them).
    """
    replies = pipe.execute(raise_on_error=False)
    calls = [*deferred, *(also or [])]
    if any(isinstance(r, redis.exceptions.NoScriptError) for r in replies[: len(calls)]):
        script = _script(RECORD_OUTCOME)
        replies[: len(calls)] = [script(keys=k, args=a) for k, a in calls]
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies[len(deferred) :]


def reset(provider: Provider) -> None:
    """Forget the provider's penalty, circuit, rate-limit block, latency and calls in flight
    (the quota count stays)."""
    client = project_redis.client()
    client.delete(_key(provider.pk), _key(provider.pk, "probe"), _key(provider.pk, "inflight"))
