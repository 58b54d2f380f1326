namespace PolicyCompiler.State.Redis;

/// <summary>
/// The server-side Lua scripts of <see cref="RedisCounterStore"/>. Redis runs a script atomically (no
/// other command interleaves), so one reserve over every counter of a call is all or nothing and free of
/// read-modify-write races between replicas.
/// </summary>
/// <remarks>
/// Times are 100 ns ticks since 2020-01-01 UTC: a Lua number is a double, exact for integers below 2^53,
/// which these stay until 2048 (ticks since 0001 or 1970 would not be). Numbers written back to Redis go
/// through <c>string.format('%.17g')</c>, which round-trips a double (Lua's default <c>tostring</c> keeps
/// 14 digits). Amounts travel as the client's round-trip text.
/// </remarks>
internal static class RedisScripts
{
    /// <summary>
    /// Reserve. KEYS[1] = the id sequence; for request i (1-based): KEYS[2i] = the sliding window's sorted
    /// set (or the calendar window's sum), KEYS[2i+1] = the sliding window's running sum (or the calendar key
    /// again). ARGV[1] = now; for request i at b = 1 + 6(i-1): ARGV[b+1] window ticks, ARGV[b+2] '1' for
    /// calendar, ARGV[b+3] amount, ARGV[b+4] max, ARGV[b+5] expiry in ms, ARGV[b+6] the calendar window's end.
    /// Returns {1, id} or {0, refused index (0-based), retry-after ticks or -1 for never}.
    /// A sorted-set member is "id:i:amount" with the admission time as its score.
    /// </summary>
    public const string Reserve = """
        local function amountOf(member)
          return tonumber(string.match(member, ':([^:]*)$'))
        end
        local function num(x)
          return string.format('%.17g', x)
        end
        local now = tonumber(ARGV[1])
        local n = (#KEYS - 1) / 2
        local state = {}
        for i = 1, n do
          local key, sumKey = KEYS[2 * i], KEYS[2 * i + 1]
          local b = 1 + 6 * (i - 1)
          local window = tonumber(ARGV[b + 1])
          local calendar = ARGV[b + 2] == '1'
          local amount = tonumber(ARGV[b + 3])
          local max = tonumber(ARGV[b + 4])
          local s = state[key]
          if not s then
            s = { sum = 0, at = now, pending = 0 }
            if calendar then
              s.sum = tonumber(redis.call('GET', key) or '0')
            else
              -- Times stay non-decreasing per counter: a clock behind the latest entry counts as that entry's time.
              local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
              if #last == 2 and tonumber(last[2]) > now then s.at = tonumber(last[2]) end
              local cutoff = num(s.at - window)
              local sum = tonumber(redis.call('GET', sumKey) or '0')
              local gone = redis.call('ZRANGEBYSCORE', key, '-inf', cutoff)
              if #gone > 0 then
                for _, m in ipairs(gone) do sum = sum - amountOf(m) end
                redis.call('ZREMRANGEBYSCORE', key, '-inf', cutoff)
              end
              -- Float dust from removals cannot survive an empty window.
              if redis.call('ZCARD', key) == 0 then sum = 0 end
              -- Written now, not only on admission: a refusal must not leave the pruned amounts counted.
              if #gone > 0 then redis.call('SET', sumKey, num(sum), 'KEEPTTL') end
              s.sum = sum
            end
            state[key] = s
          end
          if s.sum + s.pending + amount > max then
            local wanted = s.pending + amount
            if wanted > max then return { 0, i - 1, -1 } end
            if calendar then return { 0, i - 1, math.max(0, tonumber(ARGV[b + 6]) - now) } end
            -- The oldest entries leave first, each at its time + window.
            local excess = s.sum + wanted - max
            local entries = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
            for j = 1, #entries, 2 do
              excess = excess - amountOf(entries[j])
              if excess <= 0 then return { 0, i - 1, math.max(0, tonumber(entries[j + 1]) + window - now) } end
            end
            return { 0, i - 1, math.max(0, s.at + window - now) }
          end
          s.pending = s.pending + amount
        end
        local id = redis.call('INCR', KEYS[1])
        for i = 1, n do
          local key, sumKey = KEYS[2 * i], KEYS[2 * i + 1]
          local b = 1 + 6 * (i - 1)
          local ttl = ARGV[b + 5]
          if ARGV[b + 2] == '1' then
            redis.call('INCRBYFLOAT', key, ARGV[b + 3])
            redis.call('PEXPIRE', key, ttl)
          else
            local s = state[key]
            s.sum = s.sum + tonumber(ARGV[b + 3])
            redis.call('ZADD', key, num(s.at), id .. ':' .. i .. ':' .. ARGV[b + 3])
            redis.call('PEXPIRE', key, ttl)
            redis.call('SET', sumKey, num(s.sum), 'PX', ttl)
          end
        end
        return { 1, id }
        """;

    /// <summary>
    /// Rollback. For entry j (1-based): KEYS[2j-1] = sorted set (or calendar key), KEYS[2j] = running sum
    /// (or the calendar key again); ARGV[2j-1] = the member ('' for calendar), ARGV[2j] = the amount.
    /// An entry that already left its window is gone from the set and refunds nothing.
    /// </summary>
    public const string Rollback = """
        local function num(x)
          return string.format('%.17g', x)
        end
        for j = 1, #ARGV / 2 do
          local key, sumKey = KEYS[2 * j - 1], KEYS[2 * j]
          local member, amount = ARGV[2 * j - 1], tonumber(ARGV[2 * j])
          if member ~= '' then
            if redis.call('ZREM', key, member) == 1 then
              local left = 0
              if redis.call('ZCARD', key) > 0 then
                left = math.max(0, (tonumber(redis.call('GET', sumKey) or '0')) - amount)
              end
              redis.call('SET', sumKey, num(left), 'KEEPTTL')
            end
          elseif redis.call('EXISTS', key) == 1 then
            redis.call('SET', key, num(math.max(0, tonumber(redis.call('GET', key)) - amount)), 'KEEPTTL')
          end
        end
        return 1
        """;

    /// <summary>
    /// Count (diagnostics and tests): KEYS[1] = a sliding window's sorted set or a calendar window's key;
    /// ARGV[1] = the cutoff (entries after it count) or '' for a calendar window. Returns the sum as text.
    /// </summary>
    public const string Count = """
        if ARGV[1] == '' then return string.format('%.17g', tonumber(redis.call('GET', KEYS[1]) or '0')) end
        local total = 0
        for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf')) do
          total = total + tonumber(string.match(m, ':([^:]*)$'))
        end
        return string.format('%.17g', total)
        """;
}
