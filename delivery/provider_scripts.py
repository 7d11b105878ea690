"""The Lua scripts that change a provider's live state in Redis (``delivery.provider_state``).

Every write to that state is one of these scripts, so concurrent workers never lose an update;
the rules they apply are in docs/ranking.md.
"""

RECORD_OUTCOME = """
local key, probe_key, inflight_key = KEYS[1], KEYS[2], KEYS[3]
local now, outcome = tonumber(ARGV[1]), ARGV[2]
local half_life, threshold = tonumber(ARGV[3]), tonumber(ARGV[4])
local base_open, max_open = tonumber(ARGV[5]), tonumber(ARGV[6])
local block_for, was_probe, err = tonumber(ARGV[7]), ARGV[8] == '1', ARGV[9]
local call_id, sample, decay = ARGV[10], tonumber(ARGV[11]), tonumber(ARGV[12])
local slow = ARGV[13] == '1'
local s = redis.call('HMGET', key, 'p', 't', 'cf', 'opened', 'open_until', 'times_opened',
                     'blocked_until', 'lat', 'lat_t')
local p, t = tonumber(s[1]) or 0, tonumber(s[2]) or now
local cf, opened = tonumber(s[3]) or 0, tonumber(s[4]) or 0
local open_until, times = tonumber(s[5]) or 0, tonumber(s[6]) or 0
local blocked = tonumber(s[7]) or 0
if now > t then p = p * math.pow(0.5, (now - t) / half_life) end
if call_id ~= '' then redis.call('ZREM', inflight_key, call_id) end

-- Latency, a peak EWMA of seconds per message: a slower sample is taken at once, a faster one
-- is blended in by how long ago the last sample came (docs/ranking.md, "Latency").
if sample >= 0 then
  local lat, lat_t = tonumber(s[8]), tonumber(s[9]) or now
  if lat == nil or sample >= lat then
    lat = sample
  else
    local w = math.exp(-math.max(0, now - lat_t) / decay)
    lat = lat * w + sample * (1 - w)
  end
  redis.call('HSET', key, 'lat', lat, 'lat_t', now)
end

if outcome == 'accepted' or outcome == 'recipient_rejected' then
  if outcome == 'accepted' then
    cf = 0
    if slow then
      -- A soft failure: it lowers the share, but slowness alone never opens the circuit.
      if p < threshold / 2 then p = math.min(p + 10, threshold / 2) end
    else
      p = p / 2
    end
  end
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
local inflight_key = KEYS[5]
local now, n = tonumber(ARGV[1]), tonumber(ARGV[2])
local quota, rate, probe_ttl = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local call_id, max_in_flight = ARGV[7], tonumber(ARGV[8])
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
if max_in_flight >= 0 and redis.call('ZCOUNT', inflight_key, now, '+inf') >= max_in_flight then
  return {0, 'slow_busy'}
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
-- The call is in flight until its outcome is recorded, or until no call can still be running
-- (a worker killed mid-call never records one).
redis.call('ZREMRANGEBYSCORE', inflight_key, '-inf', now)
redis.call('ZADD', inflight_key, now + probe_ttl, call_id)
redis.call('EXPIRE', inflight_key, probe_ttl + 1)
return {1, probe}
"""
