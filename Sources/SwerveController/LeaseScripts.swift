import SwerveRedis

/// The lease's Lua scripts. Each runs atomically in Redis; together they are the only way the
/// lease, the epoch and the leader record change.
enum LeaseScripts {
    /// The Lua function `serverID()`: the Redis server's `run_id`, new at every start of a
    /// server. Pub/sub subscriptions live only as long as the server process: a presence
    /// recorded under another `run_id` (before a restart, or on the master before a failover)
    /// says nothing about who is subscribed now.
    private static let serverID = """
        local function serverID() return string.match(redis.call('INFO', 'server'), 'run_id:(%w+)') or '' end

        """

    /// KEYS: lease, epoch, leader, lease presence, epoch floors…  ARGV: controller id, ttl ms,
    /// leader record JSON (without epoch), the highest epoch the caller knows of, the caller's
    /// presence channel (empty: none yet). Returns `{epoch, previous holder}` (the holder empty
    /// unless a held lease was taken over), or nil when someone holds the lease.
    ///
    /// **Takeover.** A held lease is taken at once, without waiting for its TTL, when its
    /// presence key (`"<lease value>\n<channel>\n<server run_id>"`) names the holder's lease
    /// value and this server, and the channel has no subscriber: every connection of the
    /// holder's process is closed, so it died (or lost Redis, and then fencing refuses its next
    /// write and it steps down). A holder without a presence key (not subscribed yet, an older
    /// controller) or one recorded before Redis restarted or failed over keeps its lease until
    /// it renews its presence or the lease expires.
    ///
    /// **Epochs.** The epoch is one more than the largest of the counter, every floor (the epoch
    /// recorded with the stored checkpoint) and the caller's highest, and at least Redis's clock
    /// in milliseconds (`TIME`). So it never goes backwards even when Redis lost the counter and
    /// the floors with it (a restart without persistence or from an older file, a promoted
    /// replica that lagged): an epoch issued before the loss is smaller than the clock at any
    /// later election, unless the new server's clock is behind the old one's by more than the
    /// time between the two elections — and then a controller that knew the old epoch carries it
    /// in. (Epochs are therefore large numbers: 1796012749103, not 5.)
    static let acquire = RedisScript(serverID + """
        local previous = ''
        local holder = redis.call('GET', KEYS[1])
        if holder then
            local presence = redis.call('GET', KEYS[4])
            if not presence then return false end
            local value, channel, server = string.match(presence, '^(.-)\\n(.-)\\n(.*)$')
            if value ~= holder then return false end
            if tonumber(redis.call('PUBSUB', 'NUMSUB', channel)[2]) ~= 0 then return false end
            if server ~= serverID() then return false end
            previous = holder
        end
        local epoch = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
        for i = 5, #KEYS do
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
        local value = ARGV[1] .. ':' .. text
        redis.call('SET', KEYS[2], text)
        redis.call('SET', KEYS[1], value, 'PX', ARGV[2])
        if ARGV[5] ~= '' then
            redis.call('SET', KEYS[4], value .. '\\n' .. ARGV[5] .. '\\n' .. serverID(), 'PX', ARGV[2])
        else
            redis.call('DEL', KEYS[4])
        end
        local record = cjson.decode(ARGV[3])
        record['epoch'] = epoch
        redis.call('SET', KEYS[3], cjson.encode(record), 'PX', ARGV[2])
        return {epoch, previous}
        """)

    /// KEYS: lease, leader, lease presence.  ARGV: lease value, ttl ms, the holder's presence
    /// channel (empty while it is not subscribed). Extends the lease and the record if the lease
    /// is still ours, and records the presence as it is now (written only when it changed, as
    /// after a restart of Redis; removed while not subscribed, so a live holder whose
    /// subscription is reconnecting is not taken for dead).
    static let renew = RedisScript(serverID + """
        if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
        redis.call('PEXPIRE', KEYS[1], ARGV[2])
        redis.call('PEXPIRE', KEYS[2], ARGV[2])
        if ARGV[3] ~= '' then
            local presence = ARGV[1] .. '\\n' .. ARGV[3] .. '\\n' .. serverID()
            if redis.call('GET', KEYS[3]) ~= presence then
                redis.call('SET', KEYS[3], presence, 'PX', ARGV[2])
            else
                redis.call('PEXPIRE', KEYS[3], ARGV[2])
            end
        else
            redis.call('DEL', KEYS[3])
        end
        return 1
        """)

    /// KEYS: lease, leader, lease presence.  ARGV: lease value, channel, message. Deletes them
    /// and announces the departure, if the lease is still ours.
    static let release = RedisScript("""
        if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
        redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
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
