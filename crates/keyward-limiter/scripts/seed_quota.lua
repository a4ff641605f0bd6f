-- Seeds a group's quota for a period from stored units per node process (or raises the
-- figures of an existing one): each node's field becomes the larger of the one held and
-- the one given, and field '*' their sum. Merging by "larger of" makes seeding idempotent
-- and order-free: a node that raised its own field (check.lua does, from what it knows it
-- admitted, unwritten units included) is never counted twice.
--
-- KEYS[1]  the quota hash
-- ARGV     TTL in seconds, then pairs (node, units)
-- Returns  the sum

local call, tonumber = redis.call, tonumber
local total = tonumber(call('HGET', KEYS[1], '*') or 0) or 0
for i = 2, #ARGV, 2 do
  local node, units = ARGV[i], tonumber(ARGV[i + 1])
  local held = tonumber(call('HGET', KEYS[1], node) or 0) or 0
  if units > held then
    call('HSET', KEYS[1], node, units)
    total = total + units - held
  end
end
call('HSET', KEYS[1], '*', total)
call('EXPIRE', KEYS[1], tonumber(ARGV[1]))
return total
