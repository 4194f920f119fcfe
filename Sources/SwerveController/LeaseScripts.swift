import SwerveRedis

/// The lease's Lua scripts. Each runs atomically in Redis; together they are the only way the
/// lease, the epoch and the leader record change.
enum LeaseScripts {
    /// KEYS: lease, epoch, leader, epoch floors…  ARGV: controller id, ttl ms, leader record
    /// JSON (without epoch). Returns the new epoch, or nil when someone holds the lease.
    ///
    /// The epoch is one more than the largest of the counter and every floor (the epoch recorded
    /// with the stored checkpoint and snapshots), so it never goes backwards even if Redis lost
    /// the counter (a restart without persistence, a promoted replica).
    static let acquire = RedisScript("""
        if redis.call('EXISTS', KEYS[1]) == 1 then return false end
        local epoch = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
        for i = 4, #KEYS do
            local floor = tonumber(redis.call('GET', KEYS[i]) or '0') or 0
            if floor > epoch then epoch = floor end
        end
        epoch = epoch + 1
        redis.call('SET', KEYS[2], epoch)
        redis.call('SET', KEYS[1], ARGV[1] .. ':' .. epoch, 'PX', ARGV[2])
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

    public init(body: String) {
        script = RedisScript(LeaseScripts.fencePrologue + body)
    }
}
