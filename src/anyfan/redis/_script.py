"""The server-side scripts a `RedisStore` runs, and the pure code around them.

Each admission is one ``EVALSHA``: the script reads the Redis server's clock
(``TIME``, the only clock any process trusts), applies the same two rules as
the local GCRA (`anyfan._core`'s bucket with burst, and the one-second slice),
charges the call at the earliest start both allow, and returns how long to
wait. Nothing here does I/O: building the arguments and reading the replies
are plain functions, tested without a server.

A quota's state is two keys that share one hash tag, so Redis Cluster puts
them in one slot: a hash (limit, period, the bucket's ``tat``, the latest
start, the slice's sum, refunds so far, an epoch, and each slice entry's
cost) and a sorted set of slice entries scored by start time. Both expire once
the quota has been idle long enough that an empty state means the same.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from .._core import QuotaSpec, StoredCharge

#: The prefix of the error a script returns when processes disagree about a quota.
MISMATCH = "ANYFAN_MISMATCH"

_COMMON = """
pcall(redis.replicate_commands)
local function fmt(x) return string.format('%.17g', x) end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local function check(h, v, limit, per)
  if v[1] and (tonumber(v[1]) ~= limit or tonumber(v[2]) ~= per) then
    return redis.error_reply('ANYFAN_MISMATCH ' .. h .. ' ' .. v[1] .. ' ' .. v[2])
  end
  return nil
end
local function expire(h, z, tat, last, span)
  local ms = math.ceil((math.max(tat, last + span) - now + span + 1) * 1000)
  redis.call('PEXPIRE', h, ms)
  redis.call('PEXPIRE', z, ms)
end
"""

#: KEYS: hash, zset per quota. ARGV: limit, per, burst, cap, interval, span, cost per quota.
#: Returns: wait, start, then id, seg_start, seg_end, shifted, epoch per quota (as strings).
RESERVE = (
    "-- anyfan reserve 1\n"
    + _COMMON
    + """
local n = #KEYS / 2
local st = {}
local start = now
for i = 1, n do
  local h, z = KEYS[2 * i - 1], KEYS[2 * i]
  local o = (i - 1) * 7
  local limit, per = tonumber(ARGV[o + 1]), tonumber(ARGV[o + 2])
  local burst, cap = tonumber(ARGV[o + 3]), tonumber(ARGV[o + 4])
  local interval, span, cost = tonumber(ARGV[o + 5]), tonumber(ARGV[o + 6]), tonumber(ARGV[o + 7])
  local v = redis.call('HMGET', h, 'limit', 'per', 'tat', 'last', 'sum', 'shifted', 'epoch')
  local bad = check(h, v, limit, per)
  if bad then return bad end
  local tat = tonumber(v[3]) or (now - 1e9)
  local last = tonumber(v[4]) or (now - 1e9)
  local sum = tonumber(v[5]) or 0
  local epoch = v[7] or fmt(now)
  -- Slice entries no admission from now on can see.
  local old = redis.call('ZRANGEBYSCORE', z, '-inf', fmt(now - span))
  if #old > 0 then
    for _, id in ipairs(old) do
      sum = sum - (tonumber(redis.call('HGET', h, 'c' .. id)) or 0)
      redis.call('HDEL', h, 'c' .. id)
    end
    redis.call('ZREMRANGEBYSCORE', z, '-inf', fmt(now - span))
    if redis.call('ZCARD', z) == 0 then sum = 0 end
  end
  -- Served in order: never before the latest start; then the bucket; then the slice.
  local at = now
  if last > at then at = last end
  local gate = tat - math.max(burst - cost, 0) * interval
  if gate > at then at = gate end
  if sum + cost > cap then
    local e = redis.call('ZRANGE', z, 0, -1, 'WITHSCORES')
    local total, k, m = sum, 1, #e
    while k < m and tonumber(e[k + 1]) + span <= at do
      total = total - (tonumber(redis.call('HGET', h, 'c' .. e[k])) or 0)
      k = k + 2
    end
    if k < m and total + cost > cap then
      while true do
        local leaving = tonumber(e[k + 1])
        total = total - (tonumber(redis.call('HGET', h, 'c' .. e[k])) or 0)
        k = k + 2
        if k > m or total + cost <= cap then
          at = leaving + span
          break
        end
      end
    end
  end
  if at > start then start = at end
  st[i] = {h, z, limit, per, interval, span, cost, tat, sum, tonumber(v[6]) or 0, epoch}
end
local out = {fmt(start - now), fmt(start)}
for i = 1, n do
  local s = st[i]
  local h, z, interval, span, cost, tat, sum = s[1], s[2], s[5], s[6], s[7], s[8], s[9]
  local id = redis.call('HINCRBY', h, 'seq', 1)
  local seg_start, seg_end = start, start
  if cost > 0 then
    seg_start = math.max(tat, start)
    seg_end = seg_start + cost * interval
    tat = seg_end
    redis.call('ZADD', z, fmt(start), id)
    redis.call('HSET', h, 'c' .. id, fmt(cost))
    sum = sum + cost
  end
  redis.call('HSET', h, 'limit', fmt(s[3]), 'per', fmt(s[4]), 'tat', fmt(tat),
    'last', fmt(start), 'sum', fmt(sum), 'shifted', fmt(s[10]), 'epoch', s[11])
  expire(h, z, tat, start, span)
  table.insert(out, tostring(id))
  table.insert(out, fmt(seg_start))
  table.insert(out, fmt(seg_end))
  table.insert(out, fmt(s[10]))
  table.insert(out, s[11])
end
return out
"""
)

#: KEYS: hash, zset. ARGV: limit, per, interval, span, id, cost, used, seg_start, seg_end,
#: shifted, epoch. Returns the units given back (negative when more were charged).
SETTLE = (
    "-- anyfan settle 1\n"
    + _COMMON
    + """
local h, z = KEYS[1], KEYS[2]
local limit, per, interval, span = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]),
  tonumber(ARGV[4])
local id, cost, used = ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7])
local seg_start, seg_end, shifted0 = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
local v = redis.call('HMGET', h, 'limit', 'per', 'tat', 'last', 'sum', 'shifted', 'epoch')
if not v[1] or v[7] ~= ARGV[11] then return '0' end  -- expired since: nothing is held
local bad = check(h, v, limit, per)
if bad then return bad end
local tat, last, sum, shifted = tonumber(v[3]), tonumber(v[4]), tonumber(v[5]), tonumber(v[6])
if used > cost then
  local extra = used - cost
  tat = math.max(tat, now) + extra * interval
  local at = math.max(now, last)
  local nid = redis.call('HINCRBY', h, 'seq', 1)
  redis.call('ZADD', z, fmt(at), nid)
  redis.call('HSET', h, 'c' .. nid, fmt(extra), 'tat', fmt(tat), 'sum', fmt(sum + extra))
  expire(h, z, tat, last, span)
  return fmt(-extra)
end
local excess = cost - used
if excess <= 0 then return '0' end
-- Refunds of charges queued ahead may have moved this one up by up to what they
-- gave back since: assume they all did, so a refund never exceeds what is truly
-- left of this charge's stretch of the bucket.
local keep = math.max(now, seg_start + used * interval)
local removed = math.min(seg_end - (shifted - shifted0) - keep, tat - now)
if removed <= 0 then return '0' end
local units = removed / interval
if units > excess * (1 - 1e-9) then units = excess end
tat = tat - removed
local c = tonumber(redis.call('HGET', h, 'c' .. id))
if c then
  local left = math.max(0, c - units)
  redis.call('HSET', h, 'c' .. id, fmt(left))
  sum = math.max(0, sum - (c - left))
end
redis.call('HSET', h, 'tat', fmt(tat), 'shifted', fmt(shifted + removed), 'sum', fmt(sum))
return fmt(units)
"""
)


def sha1(script: str) -> str:
    """The digest ``EVALSHA`` names a script by."""
    return hashlib.sha1(script.encode(), usedforsecurity=False).hexdigest()


RESERVE_SHA = sha1(RESERVE)
SETTLE_SHA = sha1(SETTLE)


def keys_of(prefix: str, key: str) -> tuple[str, str]:
    """The hash and sorted-set keys of quota ``key``, sharing one hash tag.

    A key that already holds a hash tag (``{tenant-a}:rpm``) keeps it, so
    that several quotas used together land in one Redis Cluster slot.
    """
    tagged = "{" in key and "}" in key.partition("{")[2]
    base = prefix + key if tagged else prefix + "{" + key + "}"
    return base, base + ":s"


def _num(x: float) -> str:
    return repr(float(x))


def reserve_args(prefix: str, specs: Sequence[QuotaSpec]) -> tuple[list[str], list[str]]:
    """The ``KEYS`` and ``ARGV`` of one reservation."""
    keys: list[str] = []
    argv: list[str] = []
    for spec in specs:
        keys.extend(keys_of(prefix, spec.key))
        argv.extend(
            _num(x)
            for x in (
                spec.limit,
                spec.per,
                spec.burst,
                spec.cap,
                spec.interval,
                spec.span,
                spec.cost,
            )
        )
    return keys, argv


def read_reserve(reply: object, specs: Sequence[QuotaSpec]) -> tuple[float, list[StoredCharge]]:
    """The wait and the charges from a reservation's reply."""
    if not isinstance(reply, list) or len(reply) != 2 + 5 * len(specs):
        raise ValueError(f"unexpected reply to a reservation: {reply!r:.200}")
    wait = max(0.0, float(reply[0]))
    start = float(reply[1])
    charges = [
        StoredCharge(
            spec,
            int(reply[2 + 5 * i]),
            start,
            float(reply[3 + 5 * i]),
            float(reply[4 + 5 * i]),
            float(reply[5 + 5 * i]),
            float(reply[6 + 5 * i]),
        )
        for i, spec in enumerate(specs)
    ]
    return wait, charges


def settle_args(prefix: str, charge: StoredCharge, used: float) -> tuple[list[str], list[str]]:
    """The ``KEYS`` and ``ARGV`` of one settlement."""
    spec = charge.spec
    argv = [
        _num(spec.limit),
        _num(spec.per),
        _num(spec.interval),
        _num(spec.span),
        str(charge.id),
        _num(spec.cost),
        _num(used),
        _num(charge.seg_start),
        _num(charge.seg_end),
        _num(charge.shifted),
        _num_epoch(charge.epoch),
    ]
    return list(keys_of(prefix, spec.key)), argv


def _num_epoch(epoch: float) -> str:
    # The script stored the epoch as it formatted it ('%.17g'); Python's repr of the
    # same double may differ in form, so the script compares numbers, not text.
    return "%.17g" % epoch  # noqa: UP031 - the exact format the script used


def mismatch_message(error: str, spec: QuotaSpec) -> str:
    """A clear message for a quota whose processes disagree about its limit."""
    parts = error.split()
    theirs = f"{float(parts[1]):g} per {float(parts[2]):g}s" if len(parts) >= 3 else "another"
    return (
        f"quota {spec.key!r} is already in use with limit={theirs}, but this Rate has "
        f"limit={spec.limit:g} per {spec.per:g}s: every process sharing a key must use "
        "the same limit and per (use another key for another limit)"
    )
