-- keyward's rate-limit check: every window and the burst bucket of one owner, in one
-- round trip, on Redis's own clock. The same algorithm as keyward-core's limits module:
-- windows keep K + 1 sub-buckets of width ceil(W / K) ms and admit only if the K + 1
-- newest buckets plus the cost stay within max; the burst bucket is a GCRA. Every limit is
-- asked first; only if all admit is the cost charged everywhere.
--
-- KEYS[1]  the owner's hash (fields: one packed ring per window, `w<seconds>`, and `tat`) (hash-tagged: one Redis Cluster slot per owner)
-- ARGV     cost, window count n, then n pairs (seconds, max), then burst rate and capacity
--          (0 0 for none)
-- Returns  {admitted (1/0), then per window and for the burst (if any):
--           remaining, reset_ms, retry_ms (-1 when admitted by that limit)}

local K = 24
local RING = K + 1
local key = KEYS[1]
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local cost = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local rate = tonumber(ARGV[3 + 2 * n])
local capacity = tonumber(ARGV[4 + 2 * n])

-- Each window is one hash field: its newest bucket index and K + 1 counts, packed as
-- doubles (exact below 2^53), so a check reads and writes one field per window.
local FORMAT = string.rep('d', RING + 1)
local fields = {}
for i = 1, n do fields[i] = 'w' .. ARGV[1 + 2 * i] end
fields[n + 1] = 'tat'
local stored = redis.call('HMGET', key, unpack(fields))

local quota_limit = tonumber(ARGV[5 + 2 * n]) or 0
local quota_ttl = tonumber(ARGV[6 + 2 * n]) or 0
local quota_used = 0
local quota_exceeded = false
if quota_limit > 0 then
  local stored_quota = redis.call('GET', KEYS[2])
  if not stored_quota then return { 2 } end
  quota_used = tonumber(stored_quota)
  quota_exceeded = quota_used + cost > quota_limit
end

local windows = {}
local admitted = not quota_exceeded
local longest = 0
for i = 1, n do
  local seconds = tonumber(ARGV[1 + 2 * i])
  local max = tonumber(ARGV[2 + 2 * i])
  local width = math.max(1, math.floor((seconds * 1000 + K - 1) / K))
  local newest = -1
  local counts = {}
  if stored[i] then
    local values = { struct.unpack(FORMAT, stored[i]) }
    newest = values[1]
    for slot = 0, K do counts[slot] = values[slot + 2] end
  else
    for slot = 0, K do counts[slot] = 0 end
  end
  local bucket = math.max(math.floor(now / width), newest)
  -- count of bucket `index` as currently stored (0 outside the ring's span)
  local function count(index)
    if newest < 0 or index > newest or index + RING <= newest then return 0 end
    return counts[index % RING]
  end
  local used = 0
  for index = bucket - K, bucket do used = used + count(index) end
  local ok = used + cost <= max
  if not ok then admitted = false end
  local retry = -1
  if not ok then
    if cost > max then
      retry = 9007199254740991
    else
      local excess = used + cost - max
      local freed = 0
      retry = (bucket + K + 1) * width - now
      for index = bucket - K, bucket do
        freed = freed + count(index)
        if freed >= excess then
          retry = (index + K + 1) * width - now
          break
        end
      end
    end
  end
  windows[i] = { seconds = seconds, max = max, width = width, field = fields[i], newest = newest,
                 counts = counts, bucket = bucket, used = used, retry = retry, count = count }
  longest = math.max(longest, seconds * 1000 + width)
end

local interval, tolerance, tat, new_tat
if capacity > 0 then
  interval = math.max(1, math.floor(1000000 / rate + 0.5))
  tolerance = capacity * interval
  tat = tonumber(stored[n + 1]) or 0
  local now_us = now * 1000
  new_tat = math.max(tat, now_us) + cost * interval
  if new_tat - now_us > tolerance then admitted = false end
end

local reply = { admitted and 1 or (quota_exceeded and 3 or 0) }
local updates = {}
for i = 1, n do
  local w = windows[i]
  local used = w.used
  local count = w.count
  if admitted then
    -- advance the ring to the current bucket, then charge it
    if w.bucket > w.newest then
      local steps = math.min(w.bucket - w.newest, RING)
      if w.newest < 0 then steps = RING end
      for offset = 1, steps do
        local slot = (w.bucket - offset + 1) % RING
        w.counts[slot] = 0
      end
      w.newest = w.bucket
    end
    local slot = w.bucket % RING
    w.counts[slot] = w.counts[slot] + cost
    local packed = { w.newest }
    for s = 0, K do packed[s + 2] = w.counts[s] end
    updates[#updates + 1] = w.field
    updates[#updates + 1] = struct.pack(FORMAT, unpack(packed))
    used = used + cost
    count = function(index)
      if index > w.newest or index + RING <= w.newest then return 0 end
      return w.counts[index % RING]
    end
  end
  local reset = 0
  for index = w.bucket - K, w.bucket do
    if count(index) > 0 then
      reset = (index + K + 1) * w.width - now
      break
    end
  end
  reply[#reply + 1] = math.max(0, w.max - used)
  reply[#reply + 1] = math.max(0, reset)
  reply[#reply + 1] = admitted and -1 or w.retry
end

if capacity > 0 then
  local now_us = now * 1000
  local current = math.max(tat, now_us)
  local retry = -1
  if admitted then
    current = new_tat
    updates[#updates + 1] = 'tat'
    updates[#updates + 1] = string.format('%.0f', new_tat)
  elseif new_tat - now_us > tolerance then
    if cost > capacity then retry = 9007199254740991 else retry = math.ceil((new_tat - now_us - tolerance) / 1000) end
  end
  local backlog = current - now_us
  local remaining = math.floor(math.max(0, tolerance - backlog) / interval)
  local reset = 0
  if backlog > 0 then
    local target = math.max(0, tolerance - (remaining + 1) * interval)
    reset = math.ceil(math.max(0, backlog - target) / 1000)
  end
  reply[#reply + 1] = remaining
  reply[#reply + 1] = reset
  reply[#reply + 1] = retry
  longest = math.max(longest, math.ceil((current - now_us) / 1000))
end

if admitted then
  if #updates > 0 then redis.call('HSET', key, unpack(updates)) end
  redis.call('PEXPIRE', key, math.max(longest, 1000))
  if quota_limit > 0 then
    quota_used = redis.call('INCRBY', KEYS[2], cost)
    redis.call('EXPIRE', KEYS[2], quota_ttl)
  end
end
if quota_limit > 0 then reply[#reply + 1] = quota_used end
return reply
