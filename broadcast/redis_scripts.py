"""The Redis engine's Lua scripts: each reads or adds a topic's events in one atomic step.

Every key a script touches is one topic's (its stream, epoch hash and idempotency
key share the topic's hash tag), so on a Redis Cluster each runs on the one master
that holds the topic's slot. `broadcast/redis_bus.py` runs them.
"""
from __future__ import annotations

# The epoch of a topic's history (broadcast/events.py) lives in a hash beside
# its stream: `e` the epoch, `u` set once an event was added under it. It is
# made when missing, and made anew when its stream is gone after events were
# added (deleted, or expired): a stream created again is another history. A
# Redis restarted without persistence has neither, so every topic starts a
# new epoch there.
# On a cluster it also records the node that keeps it (`n`, CLUSTER MYID, kept
# across restarts in nodes.conf) and that node's replication id (`r`). Found
# on another node whose `master_replid2` is that id, the history was taken
# over by a replica (a failover): replication is asynchronous, so events the
# old master stored, published and acknowledged may never have reached it.
# That history ends there (its stream is dropped) and a new epoch begins, so
# a cursor from before is answered `recovered: false` rather than resumed
# over a silent hole. A slot moved to another master (its keys move whole), a
# master restarted (same node) and a lone Redis keep their history.
# One snippet, for every script that reads or adds events.
# ARGV of the caller: ..., candidate epoch, idle ttl s, cluster ('1' or '0') (named by the caller).
EPOCH = """
local function epoch_of(stream, ekey, candidate, ttl, cluster)
  local h = redis.call('HMGET', ekey, 'e', 'u', 'n', 'r')
  local e = h[1]
  local node, rid = false, false
  if cluster == '1' then
    node = redis.call('CLUSTER', 'MYID')
    local info = redis.call('INFO', 'replication')
    rid = string.match(info, 'master_replid:(%x+)')
    if e and h[3] and h[3] ~= node and h[4] == string.match(info, 'master_replid2:(%x+)') then
      redis.call('DEL', stream)
      e = false
    end
  end
  if e and h[2] and redis.call('EXISTS', stream) == 0 then
    e = false
  end
  if e then
    if node and (h[3] ~= node or h[4] ~= rid) then redis.call('HSET', ekey, 'n', node, 'r', rid) end
    redis.call('EXPIRE', ekey, ttl)
    return e
  end
  redis.call('DEL', ekey)
  redis.call('HSET', ekey, 'e', candidate)
  if node then redis.call('HSET', ekey, 'n', node, 'r', rid) end
  redis.call('EXPIRE', ekey, ttl)
  return candidate
end
"""

# KEYS: stream, idempotency key (its topic's bare one when none: every key in the slot), epoch hash
# ARGV: channel, event, frame prefix, frame suffix, ephemeral, min events, min ms, now ms,
#       idle ttl s, candidate epoch, whether there is an idempotency key ('1' or '0'), cluster
PUBLISH = EPOCH + """
local idem = ''
if ARGV[11] == '1' then idem = KEYS[2] end
if idem ~= '' then
  local first = redis.call('GET', idem)
  if first then return first end
end
if ARGV[5] == '1' then
  redis.call('SPUBLISH', ARGV[1], '\\n' .. ARGV[2] .. '\\n' .. ARGV[8] .. '\\n' .. ARGV[3] .. 'null' .. ARGV[4])
  return false
end
local epoch = epoch_of(KEYS[1], KEYS[3], ARGV[10], ARGV[9], ARGV[12])
redis.call('HSET', KEYS[3], 'u', '1')
local xid = redis.call('XADD', KEYS[1], '*', 'e', ARGV[2], 'p', ARGV[3], 's', ARGV[4])
local id = xid .. ':' .. epoch
redis.call('SPUBLISH', ARGV[1],
           id .. '\\n' .. ARGV[2] .. '\\n' .. ARGV[8] .. '\\n' .. ARGV[3] .. '"' .. id .. '"' .. ARGV[4])
local min = tonumber(ARGV[6])
local n = redis.call('XLEN', KEYS[1])
-- Keep every event that is among the newest `min` OR younger than `min ms`:
-- trim below the older of the two bounds. Checked every 64th event only.
if n > min and n % 64 == 0 then
  local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', min)
  local keep = newest[#newest][1]
  local keep_ms = tonumber(string.match(keep, '^(%d+)'))
  local cutoff = tonumber(ARGV[8]) - tonumber(ARGV[7])
  local minid = keep
  if cutoff < keep_ms then minid = string.format('%d', cutoff) end
  -- XTRIM does not record what it removed; XSETID does, so history() can
  -- tell a cursor inside the kept history from one older than it.
  local cut = redis.call('XREVRANGE', KEYS[1], '(' .. minid, '-', 'COUNT', 1)
  if #cut > 0 then
    redis.call('XTRIM', KEYS[1], 'MINID', minid)
    redis.call('XSETID', KEYS[1], xid, 'MAXDELETEDID', cut[1][1])
  end
end
redis.call('EXPIRE', KEYS[1], ARGV[9])
if idem ~= '' then redis.call('SET', idem, id, 'EX', 300) end
return id
"""

# KEYS: stream, epoch hash. ARGV: exclusive start ('(' .. id) or '-', count (0 = all),
# candidate epoch, idle ttl s, cluster. Returns {epoch, max deleted id, entries}; atomic, so
# the epoch, the trim point and the entries agree.
HISTORY = EPOCH + """
local epoch = epoch_of(KEYS[1], KEYS[2], ARGV[3], ARGV[4], ARGV[5])
if redis.call('EXISTS', KEYS[1]) == 0 then return {epoch, '0-0', {}} end
local info = redis.call('XINFO', 'STREAM', KEYS[1])
local maxdel = '0-0'
for i = 1, #info, 2 do
  if info[i] == 'max-deleted-entry-id' then maxdel = info[i + 1] end
end
if tonumber(ARGV[2]) > 0 then
  return {epoch, maxdel, redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', ARGV[2])}
end
return {epoch, maxdel, redis.call('XRANGE', KEYS[1], ARGV[1], '+')}
"""

# KEYS: stream, epoch hash. ARGV: candidate epoch, idle ttl s, cluster. Returns {epoch, newest id}.
LATEST = EPOCH + """
local epoch = epoch_of(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3])
local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #newest == 0 then return {epoch, '0-0'} end
return {epoch, newest[1][1]}
"""
