import { createHash } from 'node:crypto'

export interface Script {
  lua: string
  sha: string
}

const script = (lua: string): Script => ({ lua, sha: createHash('sha1').update(lua).digest('hex') })

/**
 * One token bucket, decided atomically in Redis on Redis's own clock (TIME), so every gateway
 * instance sees the same refill. A full bucket is deleted; a partial one expires when it would be
 * full again. Tokens travel as strings: Redis turns a Lua number reply into an integer.
 *
 * KEYS[1] bucket; ARGV: capacity, refill per ms, op (take | adjust | peek), amount.
 * Returns { allowed 0|1, tokens as a string }.
 */
export const BUCKET_SCRIPT = script(`
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local op = ARGV[3]
local amount = tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 't', 'ts')
local tokens = capacity
if state[1] then
  tokens = tonumber(state[1])
  local elapsed = now - tonumber(state[2])
  if elapsed > 0 then tokens = math.min(capacity, tokens + elapsed * rate) end
end
local allowed = 1
if op == 'take' then
  if tokens >= amount then tokens = tokens - amount else allowed = 0 end
elseif op == 'adjust' then
  tokens = math.min(capacity, tokens - amount)
end
if op ~= 'peek' and allowed == 1 then
  if tokens >= capacity then
    redis.call('DEL', KEYS[1])
  else
    redis.call('HSET', KEYS[1], 't', string.format('%.6f', tokens), 'ts', now)
    redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - tokens) / rate) + 1000)
  end
end
return { allowed, string.format('%.6f', tokens) }
`)

/**
 * One monthly quota counter, in Redis's clock: the calendar month (UTC) is worked out from TIME,
 * so instances with skewed clocks still agree on when the month turns.
 *
 * KEYS[1] counter (a hash: p = period yyyymm, u = used); ARGV: op (reserve | settle | get),
 * limit, amount, period (settle only), ttl seconds.
 * Returns { allowed 0|1, used, period, Redis time in ms as a string (reserve and get) }.
 */
export const QUOTA_SCRIPT = script(`
local op = ARGV[1]
local state = redis.call('HMGET', KEYS[1], 'p', 'u')
local p = tonumber(state[1])
local used = tonumber(state[2]) or 0
if op == 'settle' then
  local target = tonumber(ARGV[4])
  if p ~= target then return { 0, used, p or target } end
  used = math.max(0, used + tonumber(ARGV[3]))
  redis.call('HSET', KEYS[1], 'u', used)
  return { 1, used, p }
end
local t = redis.call('TIME')
local secs = tonumber(t[1])
local nowms = string.format('%d', secs * 1000 + math.floor(tonumber(t[2]) / 1000))
local z = math.floor(secs / 86400) + 719468
local era = math.floor(z / 146097)
local doe = z - era * 146097
local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
local y = yoe + era * 400
local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
local mp = math.floor((5 * doy + 2) / 153)
local m = mp + 3
if mp >= 10 then m = mp - 9 end
if m <= 2 then y = y + 1 end
local current = y * 100 + m
if p ~= current then
  p = current
  used = 0
end
if op == 'get' then return { 1, used, p, nowms } end
local limit = tonumber(ARGV[2])
local amount = tonumber(ARGV[3])
if amount == 0 or limit - used >= amount then
  used = used + amount
  redis.call('HSET', KEYS[1], 'p', p, 'u', used)
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[5]))
  return { 1, used, p, nowms }
end
return { 0, used, p, nowms }
`)

/**
 * Concurrency slots as a sorted set of slot ids scored by their lease's end (Redis clock): expired
 * leases are dropped, then the slot is added only while fewer than the limit are held, in one step.
 *
 * KEYS[1] slot set; ARGV: op (acquire | release), limit, lease ms, slot id.
 * Returns { allowed 0|1, held }.
 */
export const SLOT_SCRIPT = script(`
local op = ARGV[1]
local limit = tonumber(ARGV[2])
local lease = tonumber(ARGV[3])
local id = ARGV[4]
if op == 'release' then
  redis.call('ZREM', KEYS[1], id)
  return { 1, redis.call('ZCARD', KEYS[1]) }
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local held = redis.call('ZCARD', KEYS[1])
if held >= limit then return { 0, held } end
redis.call('ZADD', KEYS[1], now + lease, id)
redis.call('PEXPIRE', KEYS[1], lease)
return { 1, held + 1 }
`)

/**
 * Several limits of one request at once, all or nothing: every limit is checked on Redis's clock,
 * and only when all of them admit the request is anything taken. One round trip, one decision.
 *
 * KEYS: one per limit. ARGV: n, then per limit a kind and its arguments:
 *   bucket: 'b', capacity, refill per ms, amount
 *   quota:  'q', limit, amount, ttl seconds
 *   slot:   's', limit, lease ms, slot id
 * Returns { allowed 0|1, nowms, then per limit: ok 0|1, a (tokens as a string | used | held), b (period) }.
 */
export const RESERVE_SCRIPT = script(`
local n = tonumber(ARGV[1])
local t = redis.call('TIME')
local secs = tonumber(t[1])
local now = secs * 1000 + math.floor(tonumber(t[2]) / 1000)
local z = math.floor(secs / 86400) + 719468
local era = math.floor(z / 146097)
local doe = z - era * 146097
local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
local y = yoe + era * 400
local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
local mp = math.floor((5 * doy + 2) / 153)
local m = mp + 3
if mp >= 10 then m = mp - 9 end
if m <= 2 then y = y + 1 end
local current = y * 100 + m
local out = {}
local state = {}
local all = 1
for i = 1, n do
  local a = 2 + (i - 1) * 4
  local kind = ARGV[a]
  local key = KEYS[i]
  if kind == 'b' then
    local capacity = tonumber(ARGV[a + 1])
    local rate = tonumber(ARGV[a + 2])
    local amount = tonumber(ARGV[a + 3])
    local h = redis.call('HMGET', key, 't', 'ts')
    local tokens = capacity
    if h[1] then
      tokens = tonumber(h[1])
      local elapsed = now - tonumber(h[2])
      if elapsed > 0 then tokens = math.min(capacity, tokens + elapsed * rate) end
    end
    local ok = 0
    if tokens >= amount then ok = 1 else all = 0 end
    state[i] = tokens
    out[#out + 1] = ok
    out[#out + 1] = string.format('%.6f', tokens)
    out[#out + 1] = 0
  elseif kind == 'q' then
    local h = redis.call('HMGET', key, 'p', 'u')
    local used = tonumber(h[2]) or 0
    if tonumber(h[1]) ~= current then used = 0 end
    local limit = tonumber(ARGV[a + 1])
    local amount = tonumber(ARGV[a + 2])
    local ok = 0
    if amount == 0 or limit - used >= amount then ok = 1 else all = 0 end
    state[i] = used
    out[#out + 1] = ok
    out[#out + 1] = used
    out[#out + 1] = current
  else
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
    local held = redis.call('ZCARD', key)
    local ok = 0
    if held < tonumber(ARGV[a + 1]) then ok = 1 else all = 0 end
    state[i] = held
    out[#out + 1] = ok
    out[#out + 1] = held
    out[#out + 1] = 0
  end
end
if all == 1 then
  for i = 1, n do
    local a = 2 + (i - 1) * 4
    local kind = ARGV[a]
    local key = KEYS[i]
    if kind == 'b' then
      local capacity = tonumber(ARGV[a + 1])
      local rate = tonumber(ARGV[a + 2])
      local tokens = state[i] - tonumber(ARGV[a + 3])
      redis.call('HSET', key, 't', string.format('%.6f', tokens), 'ts', now)
      redis.call('PEXPIRE', key, math.ceil((capacity - tokens) / rate) + 1000)
      out[(i - 1) * 3 + 2] = string.format('%.6f', tokens)
    elseif kind == 'q' then
      local used = state[i] + tonumber(ARGV[a + 2])
      redis.call('HSET', key, 'p', current, 'u', used)
      redis.call('EXPIRE', key, tonumber(ARGV[a + 3]))
      out[(i - 1) * 3 + 2] = used
    else
      redis.call('ZADD', key, now + tonumber(ARGV[a + 2]), ARGV[a + 3])
      redis.call('PEXPIRE', key, tonumber(ARGV[a + 2]))
      out[(i - 1) * 3 + 2] = state[i] + 1
    end
  end
end
table.insert(out, 1, tostring(now))
table.insert(out, 1, all)
return out
`)
