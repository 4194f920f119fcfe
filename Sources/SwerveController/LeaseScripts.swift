import SwerveRedis

/// The lease's Lua scripts. Each runs atomically in Redis; together they are the only way the
/// lease, the epoch and the leader record change.
enum LeaseScripts {
    /// KEYS: lease, epoch, leader, epoch floors…  ARGV: controller id, ttl ms, leader record
    /// JSON (without epoch), the highest epoch the caller knows of. Returns the new epoch, or nil
    /// when someone holds the lease.
    ///
    /// The epoch is one more than the largest of the counter, every floor (the epoch recorded
    /// with the stored checkpoint) and the caller's highest, and at least Redis's clock in
    /// milliseconds (`TIME`). So it never goes backwards even when Redis lost the counter and
    /// the floors with it (a restart without persistence or from an older file, a promoted
    /// replica that lagged): an epoch issued before the loss is smaller than the clock at any
    /// later election, unless the new server's clock is behind the old one's by more than the
    /// time between the two elections — and then a controller that knew the old epoch carries it
    /// in. (Epochs are therefore large numbers: 1796012749103, not 5.)
    static let acquire = RedisScript("""
        if redis.call('EXISTS', KEYS[1]) == 1 then return false end
        local epoch = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
        for i = 4, #KEYS do
            local floor = tonumber(redis.call('GET', KEYS[i]) or '0') or 0
            if floor > epoch then epoch = floor end
        end
        local known = tonumber(ARGV[4] or '0') or 0
        if known > epoch then epoch = known end
        epoch = epoch + 1
        local time = redis.call('TIME')
        local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
        if now > epoch then epoch = now end
        local text = string.format('%d', epoch)
        redis.call('SET', KEYS[2], text)
        redis.call('SET', KEYS[1], ARGV[1] .. ':' .. text, 'PX', ARGV[2])
        local record = cjson.decode(ARGV[3])
        record['epoch'] = epoch
        redis.call('SET', KEYS[3], cjson.encode(record), 'PX', ARGV[2])
        return epoch
        """)

    /// KEYS: lease, leader.  ARGV: lease value, ttl ms. Extends both if the lease is still ours.
    static let renew = RedisScript("""
        if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
        redis.call('PEXPIRE', KEYS[1], ARGV[2])
        redis.call('PEXPIRE', KEYS[2], ARGV[2])
        return 1
        """)

    /// KEYS: lease, leader.  ARGV: lease value, channel, message. Deletes both and announces
    /// the departure, if the lease is still ours.
    static let release = RedisScript("""
        if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
        redis.call('DEL', KEYS[1], KEYS[2])
        redis.call('PUBLISH', ARGV[2], ARGV[3])
        return 1
        """)

    /// The first lines of every fenced script: KEYS[1] is the lease, ARGV[1] the leader's lease
    /// value; anything else answers a `FENCED` error and changes nothing.
    static let fencePrologue = """
        local holder = redis.call('GET', KEYS[1])
        if holder ~= ARGV[1] then
            return redis.error_reply('FENCED the lease is held by ' .. tostring(holder) .. ', not ' .. ARGV[1])
        end

        """
}

/// A Lua script that changes state only while the caller holds the lease: its body runs after
/// ``LeaseScripts/fencePrologue``, with the caller's own keys from `KEYS[2]` and arguments from
/// `ARGV[2]` on.
public struct FencedScript: Sendable, Hashable {
    let script: RedisScript
    /// What runs after the fence (a ``FencedBatch`` runs it as a function).
    let body: String

    public init(body: String) {
        self.body = body
        script = RedisScript(LeaseScripts.fencePrologue + body)
    }
}
