"""Live provider state in Redis, shared by every worker (DESIGN.md §6).

Per provider, a hash holds the penalty ``p`` as of time ``t`` (it decays exponentially from there),
consecutive failures, the circuit (``opened`` and ``open_until``: open before it, half-open after),
how often it opened in a row, and a rate-limit block. Beside it: a recipient counter per day in the
provider's time zone (the quota), a counter per second (per-second rate limits), and a probe token
(one message at a time through a half-open circuit).

Writes happen only inside Lua scripts, so concurrent workers never lose an update; reading every
provider's state for a selection is one pipelined round trip. Every function takes ``now`` (epoch
seconds) so tests and simulations can drive the clock.
"""

from __future__ import annotations

import datetime as dt
import time
import zoneinfo
from dataclasses import dataclass

import redis
from django.conf import settings

from reliability import redis as project_redis

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
QUOTA_KEY_TTL = 3 * 24 * 3600

RECORD_OUTCOME = """
local key, probe_key = KEYS[1], KEYS[2]
local now, outcome = tonumber(ARGV[1]), ARGV[2]
local half_life, threshold = tonumber(ARGV[3]), tonumber(ARGV[4])
local base_open, max_open = tonumber(ARGV[5]), tonumber(ARGV[6])
local block_for, was_probe, err = tonumber(ARGV[7]), ARGV[8] == '1', ARGV[9]
local s = redis.call('HMGET', key, 'p', 't', 'cf', 'opened', 'open_until', 'times_opened',
                     'blocked_until')
local p, t = tonumber(s[1]) or 0, tonumber(s[2]) or now
local cf, opened = tonumber(s[3]) or 0, tonumber(s[4]) or 0
local open_until, times = tonumber(s[5]) or 0, tonumber(s[6]) or 0
local blocked = tonumber(s[7]) or 0
if now > t then p = p * math.pow(0.5, (now - t) / half_life) end

if outcome == 'accepted' or outcome == 'recipient_rejected' then
  if outcome == 'accepted' then cf = 0; p = p / 2 end
  if opened == 1 and was_probe then
    -- A good probe closes the circuit; the provider comes back at no more than half penalty,
    -- so it gets a share of traffic at once and more as the penalty decays.
    opened, times, open_until = 0, 0, 0
    p = math.min(p, threshold / 2)
  end
else
  if outcome == 'rate_limited' then
    p = p + 20
    if now + block_for > blocked then blocked = now + block_for end
  elseif outcome == 'provider_error' then
    cf = cf + 1; p = p + 100
  else
    cf = cf + 1; p = p + 10 * cf
  end
  if (opened == 1 and was_probe) or (opened == 0 and p >= threshold) then
    open_until = now + math.min(max_open, base_open * math.pow(2, times))
    times = times + 1
    opened = 1
  end
  redis.call('HSET', key, 'last_error', err, 'last_error_at', now)
end
redis.call('HSET', key, 'p', p, 't', now, 'cf', cf, 'opened', opened, 'open_until', open_until,
           'times_opened', times, 'blocked_until', blocked, 'last_outcome', outcome)
if was_probe then redis.call('DEL', probe_key) end
return tostring(p)
"""

RESERVE = """
local key, quota_key, rate_key, probe_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now, n = tonumber(ARGV[1]), tonumber(ARGV[2])
local quota, rate, probe_ttl = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local s = redis.call('HMGET', key, 'opened', 'open_until', 'blocked_until')
local opened, open_until, blocked = tonumber(s[1]) or 0, tonumber(s[2]) or 0, tonumber(s[3]) or 0
if opened == 1 and now < open_until then return {0, 'open'} end
if blocked > now then return {0, 'rate_limited'} end
if rate >= 0 and (tonumber(redis.call('GET', rate_key)) or 0) + n > rate then
  return {0, 'rate'}
end
if quota >= 0 and (tonumber(redis.call('GET', quota_key)) or 0) + n > quota then
  return {0, 'quota'}
end
local probe = 0
if opened == 1 then
  if not redis.call('SET', probe_key, '1', 'NX', 'EX', probe_ttl) then return {0, 'probing'} end
  probe = 1
end
redis.call('INCRBY', rate_key, n)
redis.call('EXPIRE', rate_key, 2)
redis.call('INCRBY', quota_key, n)
redis.call('EXPIRE', quota_key, ARGV[6])
return {1, probe}
"""


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


@dataclass(frozen=True)
class ProviderView:
    """One provider's live state, as one selection sees it."""

    penalty: float
    consecutive_failures: int
    circuit: str
    open_until: float
    times_opened: int
    blocked_until: float
    quota_used: int
    probe_busy: bool
    last_error: str
    last_error_at: float | None


def _view(raw: list, quota_used: bytes | None, probe: bytes | None, at: float) -> ProviderView:
    p, t, cf, opened, open_until, times, blocked, last_error, last_error_at = (
        value.decode() if value is not None else None for value in raw
    )
    penalty = float(p or 0)
    if t is not None and at > float(t):
        penalty *= 0.5 ** ((at - float(t)) / settings.GPMAS_PENALTY_HALF_LIFE_SECONDS)
    open_until_at = float(open_until or 0)
    circuit = CLOSED if opened != "1" else OPEN if at < open_until_at else HALF_OPEN
    return ProviderView(
        penalty=penalty,
        consecutive_failures=int(cf or 0),
        circuit=circuit,
        open_until=open_until_at,
        times_opened=int(times or 0),
        blocked_until=float(blocked or 0),
        quota_used=int(quota_used or 0),
        probe_busy=probe is not None,
        last_error=last_error or "",
        last_error_at=float(last_error_at) if last_error_at else None,
    )


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
)


def read_views(providers, *, at: float) -> dict[int, ProviderView]:
    """Every provider's state in one round trip (which also carries this process's unsent
    successes: see ``record_success_later``)."""
    pipe = project_redis.client().pipeline(transaction=False)
    unsent = _queue_unsent(pipe)
    for provider in providers:
        pipe.hmget(_key(provider.pk), _FIELDS)
        pipe.get(_key(provider.pk, "quota", quota_day(provider.quota_reset_tz, at)))
        pipe.get(_key(provider.pk, "probe"))
    replies = _execute(pipe, unsent)
    return {
        provider.pk: _view(*replies[3 * i : 3 * i + 3], at) for i, provider in enumerate(providers)
    }


@dataclass(frozen=True)
class Grant:
    ok: bool
    probe: bool = False
    refused_because: str = ""


def reserve(provider, *, at: float, recipients: int = 1) -> Grant:
    """Take quota (and the probe token of a half-open circuit) before calling the provider."""
    ok, detail = _script(RESERVE)(
        keys=[
            _key(provider.pk),
            _key(provider.pk, "quota", quota_day(provider.quota_reset_tz, at)),
            _key(provider.pk, "rate", int(at)),
            _key(provider.pk, "probe"),
        ],
        args=[
            at,
            recipients,
            provider.daily_quota if provider.daily_quota is not None else -1,
            provider.max_per_second if provider.max_per_second is not None else -1,
            settings.GPMAS_PROBE_TIMEOUT_SECONDS,
            QUOTA_KEY_TTL,
        ],
    )
    if ok:
        return Grant(ok=True, probe=bool(detail))
    return Grant(ok=False, refused_because=detail.decode())


def refund(provider, *, at: float, recipients: int = 1) -> None:
    """Give back quota the provider did not use (it did not take the message)."""
    key = _key(provider.pk, "quota", quota_day(provider.quota_reset_tz, at))
    project_redis.client().decrby(key, recipients)


def record_outcome(
    provider,
    outcome: str,
    *,
    at: float,
    probe: bool = False,
    retry_after: float | None = None,
    error: str = "",
) -> float:
    """Apply one call's outcome to the provider's penalty and circuit. Returns the penalty."""
    pipe = project_redis.client().pipeline(transaction=False)
    unsent = _queue_unsent(pipe)  # first: outcomes apply in the order the calls ended
    keys, args = _outcome_call(
        provider, outcome, at=at, probe=probe, retry_after=retry_after, error=error
    )
    pipe.evalsha(_script(RECORD_OUTCOME).sha, len(keys), *keys, *args)
    [penalty] = _execute(pipe, unsent, also=[(keys, args)])
    return float(penalty)


def record_success_later(provider, *, at: float) -> None:
    """An accepted call (not a probe), written with this process's next round trip to Redis.

    Successes are the common case and only halve a penalty and end a failure streak: they can
    wait for the next selection's read (or any outcome written at once, or ``flush_outcomes``)
    instead of costing a round trip per message of their own.
    """
    _unsent.append(
        _outcome_call(provider, "accepted", at=at, probe=False, retry_after=None, error="")
    )


def flush_outcomes() -> None:
    """Write the unsent successes now (the end of a batch)."""
    if _unsent:
        pipe = project_redis.client().pipeline(transaction=False)
        _execute(pipe, _queue_unsent(pipe))


_unsent: list[tuple[list[str], list]] = []


def _outcome_call(
    provider, outcome: str, *, at: float, probe: bool, retry_after: float | None, error: str
) -> tuple[list[str], list]:
    block_for = retry_after if retry_after is not None else settings.GPMAS_RATE_LIMIT_SECONDS
    keys = [_key(provider.pk), _key(provider.pk, "probe")]
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
    ]
    return keys, args


def _queue_unsent(pipe) -> list[tuple[list[str], list]]:
    unsent = _unsent[:]
    _unsent.clear()
    sha = _script(RECORD_OUTCOME).sha
    for keys, args in unsent:
        pipe.evalsha(sha, len(keys), *keys, *args)
    return unsent


def _execute(pipe, unsent: list, also: list | None = None) -> list:
    """Run a pipeline that starts with outcome scripts; return the replies after ``unsent``.

    The scripts go by their SHA: after a Redis restart that forgot them, they are loaded and the
    outcomes written again (the pipeline's other commands do not depend on them).
    """
    replies = pipe.execute(raise_on_error=False)
    scripts = len(unsent) + len(also or [])
    if any(isinstance(r, redis.exceptions.NoScriptError) for r in replies[:scripts]):
        script = _script(RECORD_OUTCOME)
        replies[:scripts] = [script(keys=k, args=a) for k, a in [*unsent, *(also or [])]]
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies[len(unsent) :]


def reset(provider) -> None:
    """Forget the provider's penalty, circuit and rate-limit block (the quota count stays)."""
    client = project_redis.client()
    client.delete(_key(provider.pk), _key(provider.pk, "probe"))
