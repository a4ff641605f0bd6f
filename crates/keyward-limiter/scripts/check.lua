-- keyward's rate-limit check: every window, the burst bucket and the quota of one owner, in
-- one round trip, on Redis's own clock. The same algorithm as keyward-core's limits module:
-- windows keep K + 1 sub-buckets of width ceil(W / K) ms and admit only if the K + 1
-- newest buckets plus the cost stay within max; the burst bucket is a GCRA. Every limit is
-- asked first; only if all admit is the cost charged everywhere.
--
-- KEYS[1]  the owner's state: one string of packed doubles (exact below 2^53) — the burst
--          bucket's TAT in µs, then per window a record of its seconds, its newest bucket
--          index, the sum of its K + 1 counts and the counts (bucket i at slot i % (K + 1)).
--          One GET, one SET PX.
-- KEYS[2]  the group's quota for the period: a hash of the units each node process admitted
--          and their sum in field '*' (seeded by the caller, with its TTL: seed_quota.lua)
-- ARGV     cost, window count n, then n pairs (seconds, max), then burst rate and capacity
--          (0 0 for none), then quota limit and TTL (0 0 for none), then the checking node
--          and the units it knows it admitted in the period (its field is raised to that
--          first: Redis may have lost units the node has admitted but not written yet)
-- Returns  {2} when the quota hash is missing (the caller seeds it and asks again), else
--          {admitted (1, 0, or 3 when the quota refused), then per window and for the burst
--          (if any): remaining, reset_ms, retry_ms (-1 when admitted by that limit), then the
--          quota's units used (if any)}
--
-- Written for Redis's CPU, which is what a shared limiter spends: three commands (TIME,
-- GET, SET) plus the quota's, one unpack and one pack, the state updated in place, and
-- per window work proportional to the buckets the ring advances over (a running sum), not
-- to K — no closures or per-window tables.

-- Globals are slow to reach from a Redis script (a protected table): take them once.
local floor, ceil, max_of = math.floor, math.ceil, math.max
local tonumber, unpack, rep, call = tonumber, unpack, string.rep, redis.call
local pack_values, unpack_values = struct.pack, struct.unpack

local K = 24
local RING = K + 1
local RECORD = RING + 3
local NEVER = 9007199254740991

local time = call('TIME')
local now = tonumber(time[1]) * 1000 + floor(tonumber(time[2]) / 1000)
local cost = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local rate = tonumber(ARGV[3 + 2 * n])
local capacity = tonumber(ARGV[4 + 2 * n])
local quota_limit = tonumber(ARGV[5 + 2 * n]) or 0
local node = ARGV[7 + 2 * n]

local quota_used = 0
local quota_exceeded = false
if quota_limit > 0 then
  local held = call('HMGET', KEYS[2], '*', node)
  if not held[1] then return { 2 } end
  quota_used = tonumber(held[1])
  local mine = tonumber(ARGV[8 + 2 * n])
  local known = tonumber(held[2] or 0) or 0
  if mine > known then
    call('HSET', KEYS[2], node, mine)
    quota_used = call('HINCRBY', KEYS[2], '*', mine - known)
  end
  quota_exceeded = quota_used + cost > quota_limit
end

-- v: the state's values (v[1] the TAT, then records); base[i]: where window i's record
-- starts in v (its seconds; +1 newest bucket, +2 sum, +3 + slot the counts).
local v
local size = 1
local stored = call('GET', KEYS[1])
if stored then
  size = floor(#stored / 8)
  v = { unpack_values(rep('d', size), stored) }
  v[size + 1] = nil
else
  v = { 0 }
end

local admitted = not quota_exceeded
local base, width, bucket, used, retry = {}, {}, {}, {}, {}
local longest = 0
for i = 1, n do
  local seconds = tonumber(ARGV[1 + 2 * i])
  local max = tonumber(ARGV[2 + 2 * i])
  local w = floor((seconds * 1000 + K - 1) / K)
  if w < 1 then w = 1 end
  local r
  for at = 2, size, RECORD do
    if v[at] == seconds then r = at break end
  end
  if not r then
    -- a window this owner has no state for yet: an empty record at the end
    r = size + 1
    v[r] = seconds
    v[r + 1] = -1
    v[r + 2] = 0
    for slot = 0, K do v[r + 3 + slot] = 0 end
    size = size + RECORD
  end
  local newest = v[r + 1]
  local b = floor(now / w)
  if newest > b then b = newest end
  -- the window holds buckets b - K .. b: the ring's sum minus the buckets before b - K
  local sum = v[r + 2]
  if newest < 0 or b - newest >= RING then
    sum = 0
  elseif b > newest then
    for index = newest - K, b - K - 1 do sum = sum - v[r + 3 + index % RING] end
  end
  base[i], width[i], bucket[i], used[i], retry[i] = r, w, b, sum, -1
  if sum + cost > max then
    admitted = false
    if cost > max then
      retry[i] = NEVER
    else
      -- wait until enough of the oldest buckets have left the window
      local excess = sum + cost - max
      local freed = 0
      for index = max_of(b - K, newest - K), newest do
        freed = freed + v[r + 3 + index % RING]
        if freed >= excess then
          retry[i] = (index + K + 1) * w - now
          break
        end
      end
    end
  end
  local span = seconds * 1000 + w
  if span > longest then longest = span end
end

local tat = v[1]
local interval, tolerance, new_tat
local now_us = now * 1000
if capacity > 0 then
  interval = floor(1000000 / rate + 0.5)
  if interval < 1 then interval = 1 end
  tolerance = capacity * interval
  new_tat = max_of(tat, now_us) + cost * interval
  if new_tat - now_us > tolerance then admitted = false end
end

local reply = { admitted and 1 or (quota_exceeded and 3 or 0) }
for i = 1, n do
  local max = tonumber(ARGV[2 + 2 * i])
  local r, w, b, sum = base[i], width[i], bucket[i], used[i]
  local newest = v[r + 1]
  if admitted then
    -- advance the ring to bucket b (clearing what it passes over), then charge it
    if newest < 0 or b - newest >= RING then
      for slot = 0, K do v[r + 3 + slot] = 0 end
    else
      for index = newest + 1, b do v[r + 3 + index % RING] = 0 end
    end
    local slot = r + 3 + b % RING
    v[slot] = v[slot] + cost
    sum = sum + cost
    newest = b
    v[r + 1] = b
    v[r + 2] = sum
  end
  -- reset: until the oldest counted bucket leaves the window. When the newest bucket holds
  -- the whole sum (a long window, or a quiet owner) it is that one, with no scan.
  local reset = 0
  if sum > 0 and v[r + 3 + newest % RING] == sum then
    reset = (newest + K + 1) * w - now
  else
    for index = max_of(b - K, newest - K), newest do
      if v[r + 3 + index % RING] > 0 then
        reset = (index + K + 1) * w - now
        break
      end
    end
  end
  reply[#reply + 1] = max_of(0, max - sum)
  reply[#reply + 1] = max_of(0, reset)
  reply[#reply + 1] = retry[i]
end

if capacity > 0 then
  local current = max_of(tat, now_us)
  local burst_retry = -1
  if admitted then
    current = new_tat
    v[1] = new_tat
  elseif new_tat - now_us > tolerance then
    if cost > capacity then
      burst_retry = NEVER
    else
      burst_retry = ceil((new_tat - now_us - tolerance) / 1000)
    end
  end
  local backlog = current - now_us
  local remaining = floor(max_of(0, tolerance - backlog) / interval)
  local reset = 0
  if backlog > 0 then
    local target = max_of(0, tolerance - (remaining + 1) * interval)
    reset = ceil(max_of(0, backlog - target) / 1000)
  end
  reply[#reply + 1] = remaining
  reply[#reply + 1] = reset
  reply[#reply + 1] = burst_retry
  local drain = ceil(backlog / 1000)
  if drain > longest then longest = drain end
end

if admitted then
  -- records of windows this check does not name (a plan edit removed them) stay as they were
  call('SET', KEYS[1], pack_values(rep('d', size), unpack(v, 1, size)), 'PX',
    max_of(longest, 1000))
  if quota_limit > 0 then
    -- the hash was seeded with its TTL; HINCRBY keeps it
    call('HINCRBY', KEYS[2], node, cost)
    quota_used = call('HINCRBY', KEYS[2], '*', cost)
  end
end
if quota_limit > 0 then reply[#reply + 1] = quota_used end
return reply
