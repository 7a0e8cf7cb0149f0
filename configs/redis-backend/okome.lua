#!lua name=okome
--[[
OKOME backend: the planner cache and the agent budgets as one Redis 7
function library (FUNCTION LOAD / FCALL). Every decision is ONE atomic call
on Redis's own clock (TIME), so no client can die half-way through it and no
two orchestrators with skewed clocks split a window. Design, key schema, TTL
table and operator commands: docs/budgets.md.

Rules this file keeps (tests/tests/budgets.rs holds them against redis-server):
  * every key a function writes gets a TTL in the same call, always;
  * rate and write budgets are EXACT over a sliding window: a log of the
    accepted requests (a sorted set, score = server ms), trimmed each call;
  * a clock that steps back never locks an agent out for longer than one
    window: entries stamped in the future are dropped (the budget then fails
    open, once, rather than shut);
  * operators clamp and report through an index this library keeps
    (okome:budget:index), never KEYS or SCAN, never a planner/RAG key;
  * callers pass every key a function touches in KEYS, except okome_report,
    which reads the per-agent keys named by the index (standalone Redis
    only; documented in docs/budgets.md).

Bump OKOME_VERSION on every change: okome-functions-rdb checks the loaded
library answers it, and `FCALL_RO okome_version 0` tells what a node runs.
]]

local OKOME_VERSION = '1.0.0'

-- Agents stay in the operator index for an hour after their last request.
local INDEX_HORIZON_MS = 3600000
-- The fencing counter of a planner key outlives any plan and lease on it.
local FENCE_TTL_MIN_MS = 86400000

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function int_arg(args, i, name, default)
  local v = args[i]
  if v == nil or v == '' then
    if default ~= nil then return default end
    return redis.error_reply('ERR okome: missing argument ' .. name)
  end
  local n = tonumber(v)
  if n == nil or n ~= math.floor(n) or n < 0 then
    return redis.error_reply('ERR okome: ' .. name .. ' must be a non-negative integer, got ' .. v)
  end
  return n
end

-- A clamp (okome:budget:clamp:<agent> or okome:budget:clamp:_all, a hash of
-- field → limit, with a TTL) can only LOWER a limit.
local function clamped(limit, field, agent_clamp, all_clamp)
  for _, key in ipairs({agent_clamp, all_clamp}) do
    if key then
      local c = tonumber(redis.call('HGET', key, field))
      if c and c < limit then limit = c end
    end
  end
  return limit
end

local function touch_index(index, agent, now)
  redis.call('ZADD', index, now, agent)
  redis.call('ZREMRANGEBYSCORE', index, '-inf', now - INDEX_HORIZON_MS)
  redis.call('PEXPIRE', index, INDEX_HORIZON_MS)
end

-- The sliding log: score = the server ms of an accepted request. Members
-- only need to be unique among the entries of one window, so they are a
-- small cyclic counter (next after the newest, modulo 128 or 2 × limit):
-- 0..127 is ONE byte in the listpack instead of 9 for a timestamp, which is
-- what keeps an agent at 60/min under 1.5 KB. ZADD NX guarantees uniqueness
-- even when equal scores make "the newest" ambiguous.
local function sliding(key, limit, window, now)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  redis.call('ZREMRANGEBYSCORE', key, '(' .. now, '+inf')
  local count = redis.call('ZCARD', key)
  if count < limit then
    local modulo = math.max(128, 2 * limit)
    local newest = redis.call('ZRANGE', key, -1, -1)[1]
    local member = 0
    if newest then member = (tonumber(newest) or 0) + 1 end
    member = member % modulo
    while redis.call('ZADD', key, 'NX', now, member) == 0 do
      member = (member + 1) % modulo
    end
    redis.call('PEXPIRE', key, window)
    local oldest = tonumber(redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')[2])
    return {1, limit - count - 1, 0, oldest + window - now, now, limit}
  end
  -- Refused: the (count - limit + 1)-th oldest entry has to leave first.
  local retry = window
  if limit > 0 then
    local e = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
    retry = tonumber(e[2]) + window - now
  end
  local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  local reset = window
  if oldest[2] then reset = tonumber(oldest[2]) + window - now end
  if count > 0 then
    local newest = tonumber(redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')[2])
    redis.call('PEXPIRE', key, math.max(1, newest + window - now))
  end
  return {0, 0, math.max(1, retry), reset, now, limit}
end

-- FCALL okome_rate 4 okome:budget:rl:<agent> okome:budget:index
--       okome:budget:clamp:<agent> okome:budget:clamp:_all  <agent> <limit> <window_ms>
-- → {allowed 1|0, remaining, retry_after_ms, reset_ms, server_now_ms, effective_limit}
local function budget(field)
  return function(keys, args)
    local agent = args[1]
    if agent == nil or agent == '' then
      return redis.error_reply('ERR okome: missing argument agent')
    end
    local limit = int_arg(args, 2, 'limit')
    if type(limit) == 'table' then return limit end
    local window = int_arg(args, 3, 'window_ms')
    if type(window) == 'table' then return window end
    if window < 1 then
      return redis.error_reply('ERR okome: window_ms must be > 0')
    end
    local now = now_ms()
    limit = clamped(limit, field, keys[3], keys[4])
    local r = sliding(keys[1], limit, window, now)
    touch_index(keys[2], agent, now)
    return r
  end
end

-- FCALL okome_track_key 4 okome:agentkeys:<agent> okome:budget:index
--       okome:budget:clamp:<agent> okome:budget:clamp:_all  <agent> <cache_key> <ttl_ms> <cap>
-- → {allowed 1|0, live_keys, effective_cap}
-- A sorted set of sha1(cache_key)[1..12] → expiry (server ms): expired keys
-- stop counting at the next call; re-writing a key refreshes its expiry.
local function track_key(keys, args)
  local agent, cache_key = args[1], args[2]
  if agent == nil or agent == '' or cache_key == nil or cache_key == '' then
    return redis.error_reply('ERR okome: usage: <agent> <cache_key> <ttl_ms> <cap>')
  end
  local ttl = int_arg(args, 3, 'ttl_ms')
  if type(ttl) == 'table' then return ttl end
  local cap = int_arg(args, 4, 'cap')
  if type(cap) == 'table' then return cap end
  local now = now_ms()
  cap = clamped(cap, 'keys', keys[3], keys[4])
  local set = keys[1]
  redis.call('ZREMRANGEBYSCORE', set, '-inf', now)
  local member = string.sub(redis.sha1hex(cache_key), 1, 12)
  local live = redis.call('ZCARD', set)
  local allowed = 1
  if redis.call('ZSCORE', set, member) then
    redis.call('ZADD', set, 'GT', now + ttl, member)
  elseif live < cap then
    redis.call('ZADD', set, now + ttl, member)
    live = live + 1
  else
    allowed = 0
  end
  if live > 0 then
    local last = tonumber(redis.call('ZRANGE', set, -1, -1, 'WITHSCORES')[2])
    redis.call('PEXPIRE', set, math.max(1, last - now))
  end
  touch_index(keys[2], agent, now)
  return {allowed, live, cap}
end

-- Planner cache. KEYS: <plan> <plan>:lease <plan>:fence.
-- The plan is a hash {v = value, d = compute ms, e = expiry ms, f = fence};
-- the lease a string "<token>:<start ms>" with PX; the fence an INCR counter.

-- FCALL okome_plan_get 3 <plan> <plan>:lease <plan>:fence <lease_ms> [rand 0<r<=1] [beta] [wait_cap_ms]
-- → {'HIT', value, ttl_ms} | {'LEAD', token, stale value or nil} | {'WAIT', ms}
local function plan_get(keys, args)
  local plan, lease, fence = keys[1], keys[2], keys[3]
  local lease_ms = int_arg(args, 1, 'lease_ms')
  if type(lease_ms) == 'table' then return lease_ms end
  if lease_ms < 1 then return redis.error_reply('ERR okome: lease_ms must be > 0') end
  local r = tonumber(args[2])
  if r == nil or r <= 0 or r > 1 then r = math.random() end
  if r <= 0 then r = 1e-12 end
  local beta = tonumber(args[3]) or 1
  local wait_cap = tonumber(args[4]) or 25
  local now = now_ms()

  local function lead(stale)
    local token = redis.call('INCR', fence)
    local keep = math.max(FENCE_TTL_MIN_MS, redis.call('PTTL', plan) + lease_ms)
    redis.call('PEXPIRE', fence, keep)
    redis.call('SET', lease, token .. ':' .. now, 'PX', lease_ms)
    return {'LEAD', token, stale}
  end

  local h = redis.pcall('HMGET', plan, 'v', 'd', 'e')
  if h.err then
    -- A plan the seed's cache.py stored as a plain string (SET … EX) while
    -- the two ran side by side: serve it until it expires; a commit
    -- replaces it with a hash.
    local old = redis.call('GET', plan)
    if old then return {'HIT', old, math.max(0, redis.call('PTTL', plan))} end
    h = {}
  end
  if h[1] then
    local delta, expiry = tonumber(h[2]) or 0, tonumber(h[3]) or now
    -- XFetch (Vattani et al., VLDB 2015): recompute early with probability
    -- rising as expiry nears, scaled by how long the last compute took.
    if now - delta * beta * math.log(r) >= expiry and redis.call('EXISTS', lease) == 0 then
      return lead(h[1])
    end
    return {'HIT', h[1], math.max(0, expiry - now)}
  end
  local held = redis.call('PTTL', lease)
  if held > 0 then
    return {'WAIT', math.max(1, math.min(held, wait_cap))}
  end
  return lead(false)
end

-- FCALL okome_plan_commit 3 <plan> <plan>:lease <plan>:fence <token> <value> <ttl_ms>
-- → {'OK', token} | {'STALE', newest fence} | {'NOT_HOLDER', holder token}
-- Accepted from the lease holder, or from a leader whose lease lapsed while
-- nobody else took it, and only if its token is newer than the stored plan.
local function plan_commit(keys, args)
  local plan, lease, fence = keys[1], keys[2], keys[3]
  local token = int_arg(args, 1, 'token')
  if type(token) == 'table' then return token end
  local value = args[2]
  if value == nil then return redis.error_reply('ERR okome: missing argument value') end
  local ttl = int_arg(args, 3, 'ttl_ms')
  if type(ttl) == 'table' then return ttl end
  if ttl < 1 then return redis.error_reply('ERR okome: ttl_ms must be > 0') end
  local now = now_ms()
  local issued = tonumber(redis.call('GET', fence))
  -- pcall: a seed-era string plan has no fence (0) and is replaced.
  local f = redis.pcall('HGET', plan, 'f')
  local stored = (type(f) == 'string' and tonumber(f)) or 0
  if issued == nil or token > issued or token <= stored then
    return {'STALE', math.max(stored, issued or 0)}
  end
  local holder = redis.call('GET', lease)
  local start = now
  if holder then
    local t, s = string.match(holder, '^(%d+):(%d+)$')
    if tonumber(t) ~= token then return {'NOT_HOLDER', tonumber(t)} end
    start = tonumber(s)
    redis.call('DEL', lease)
  end
  redis.call('DEL', plan)
  redis.call('HSET', plan, 'v', value, 'd', math.max(0, now - start), 'e', now + ttl, 'f', token)
  redis.call('PEXPIRE', plan, ttl)
  redis.call('PEXPIRE', fence, math.max(FENCE_TTL_MIN_MS, ttl * 2))
  return {'OK', token}
end

-- FCALL okome_plan_renew 1 <plan>:lease <token> <lease_ms> → 1 renewed | 0 not the holder
local function plan_renew(keys, args)
  local token = args[1]
  local lease_ms = int_arg(args, 2, 'lease_ms')
  if type(lease_ms) == 'table' then return lease_ms end
  local holder = redis.call('GET', keys[1])
  if holder and string.match(holder, '^(%d+):') == token then
    redis.call('PEXPIRE', keys[1], math.max(1, lease_ms))
    return 1
  end
  return 0
end

-- FCALL okome_plan_release 1 <plan>:lease <token> → 1 released | 0 not the holder
local function plan_release(keys, args)
  local holder = redis.call('GET', keys[1])
  if holder and string.match(holder, '^(%d+):') == args[1] then
    redis.call('DEL', keys[1])
    return 1
  end
  return 0
end

-- Operators. FCALL okome_clamp 1 okome:budget:clamp:<agent>|okome:budget:clamp:_all
--   <rate|writes|keys> <limit> <ttl_s> → 'OK'. Lowers a limit until the TTL ends.
local function clamp(keys, args)
  local field = args[1]
  if field ~= 'rate' and field ~= 'writes' and field ~= 'keys' then
    return redis.error_reply('ERR okome: clamp field must be rate, writes or keys')
  end
  if string.sub(keys[1], 1, 19) ~= 'okome:budget:clamp:' then
    return redis.error_reply('ERR okome: clamp key must be okome:budget:clamp:<agent>|_all')
  end
  local limit = int_arg(args, 2, 'limit')
  if type(limit) == 'table' then return limit end
  local ttl = int_arg(args, 3, 'ttl_s', 3600)
  if type(ttl) == 'table' then return ttl end
  if ttl < 1 then return redis.error_reply('ERR okome: ttl_s must be > 0') end
  redis.call('HSET', keys[1], field, limit)
  redis.call('EXPIRE', keys[1], ttl)
  return redis.status_reply('OK')
end

-- FCALL okome_unclamp 1 okome:budget:clamp:<agent>|_all → 1 | 0
local function unclamp(keys, _)
  if string.sub(keys[1], 1, 19) ~= 'okome:budget:clamp:' then
    return redis.error_reply('ERR okome: unclamp key must be okome:budget:clamp:<agent>|_all')
  end
  return redis.call('DEL', keys[1])
end

-- FCALL okome_reset 3 okome:budget:rl:<agent> okome:budget:writes:<agent> okome:agentkeys:<agent>
-- → how many of the agent's budget keys were removed (never a planner key).
local function reset(keys, _)
  local n = 0
  for _, key in ipairs(keys) do
    if string.sub(key, 1, 13) ~= 'okome:budget:' and string.sub(key, 1, 16) ~= 'okome:agentkeys:' then
      return redis.error_reply('ERR okome: reset only takes okome:budget:* and okome:agentkeys:* keys')
    end
  end
  for _, key in ipairs(keys) do n = n + redis.call('UNLINK', key) end
  return n
end

-- FCALL_RO okome_report 1 okome:budget:index [top_n=20] [rate_window_ms=60000] [writes_window_ms=60000]
-- → rows {agent, requests_in_window, writes_in_window, live_keys, ms_since_seen, clamp_rate|-1},
--   busiest first. Reads the per-agent keys the index names (not declared in
--   KEYS: standalone Redis only).
local function report(keys, args)
  local top = tonumber(args[1]) or 20
  local rw = tonumber(args[2]) or 60000
  local ww = tonumber(args[3]) or 60000
  local now = now_ms()
  local agents = redis.call('ZRANGEBYSCORE', keys[1], now - INDEX_HORIZON_MS, '+inf', 'WITHSCORES')
  local rows = {}
  for i = 1, #agents, 2 do
    local a = agents[i]
    local clamp_rate = tonumber(redis.call('HGET', 'okome:budget:clamp:' .. a, 'rate')) or -1
    rows[#rows + 1] = {
      a,
      redis.call('ZCOUNT', 'okome:budget:rl:' .. a, '(' .. (now - rw), now),
      redis.call('ZCOUNT', 'okome:budget:writes:' .. a, '(' .. (now - ww), now),
      redis.call('ZCOUNT', 'okome:agentkeys:' .. a, '(' .. now, '+inf'),
      now - tonumber(agents[i + 1]),
      clamp_rate,
    }
  end
  table.sort(rows, function(x, y)
    if x[2] ~= y[2] then return x[2] > y[2] end
    return x[1] < y[1]
  end)
  local out = {}
  for i = 1, math.min(top, #rows) do out[i] = rows[i] end
  return out
end

redis.register_function{function_name = 'okome_version', flags = {'no-writes'},
  callback = function() return OKOME_VERSION end}
redis.register_function('okome_rate', budget('rate'))
redis.register_function('okome_write', budget('writes'))
redis.register_function('okome_track_key', track_key)
redis.register_function('okome_plan_get', plan_get)
redis.register_function('okome_plan_commit', plan_commit)
redis.register_function('okome_plan_renew', plan_renew)
redis.register_function('okome_plan_release', plan_release)
redis.register_function('okome_clamp', clamp)
redis.register_function('okome_unclamp', unclamp)
redis.register_function('okome_reset', reset)
redis.register_function{function_name = 'okome_report', flags = {'no-writes'}, callback = report}
