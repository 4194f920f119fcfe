import SwerveCore
public import SwerveProtocol
public import SwerveRedis

/// The node side of the liveness protocol as commands (see "Node leases" in
/// `docs/PROTOCOL.md`): what `swerve node` sends, and what a simulated fleet
/// (`swerve-ops sim`) sends for thousands of nodes, spelled once.
public enum NodeLeaseCommands {
    /// Registers node `record.id`: renews (or takes back) `owner`'s claim, writes the record
    /// (with `recordTTL`) and the lease (Redis's `TIME` + `nodeTTL`), marks the node changed and
    /// publishes `wake`. Replies `{claim kept 1/0, Redis's time (ms), lease was there 1/0}`.
    public static func register(keys: ClusterKeys, owner: NodeOwnerDocument, record: NodeRecord, recordTTL: Duration,
                                nodeTTL: Duration, wake: WakeUp) -> RedisCommand {
        registerScript.command(keys: [keys.nodeOwner(record.id), keys.node(record.id), keys.nodes, keys.changedNodes],
                               arguments: [DocumentCodec.encode(owner), recordTTL.wholeMilliseconds, DocumentCodec.encode(record), record.id,
                                           nodeTTL.wholeMilliseconds, keys.wake, DocumentCodec.encode(wake)])
    }

    /// A heartbeat at rest: pushes node `id`'s lease to `deadline` (Unix ms, Redis's clock).
    /// Replies 1 when the node was missing from the set (Redis lost it), else 0.
    public static func beat(keys: ClusterKeys, id: String, deadline: Int64) -> RedisCommand {
        RedisCommand("ZADD", keys.nodes, deadline, id)
    }

    /// Every ``ClusterKeys/nodeRecordTTL``/3: renews `owner`'s claim (only if it still holds
    /// it), the record's TTL, and the lease. Replies: the claim's fate (1 kept, 0 another
    /// agent's), `PEXPIRE`'s (0: the record is gone), `ZADD`'s (1: the node was missing).
    public static func renew(keys: ClusterKeys, id: String, owner: NodeOwnerDocument, recordTTL: Duration, deadline: Int64) -> [RedisCommand] {
        [renewClaim.command(keys: [keys.nodeOwner(id)], arguments: [DocumentCodec.encode(owner), recordTTL.wholeMilliseconds]),
         RedisCommand("PEXPIRE", keys.node(id), recordTTL.wholeMilliseconds),
         beat(keys: keys, id: id, deadline: deadline)]
    }

    /// Renews the claim if it is still this agent's (a script, so it never extends another's).
    static let renewClaim = RedisScript("""
        local current = redis.call('GET', KEYS[1])
        if current == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
        if current == false then return redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) and 1 end
        return 0
        """)

    /// Records a worker's exit: the exit record (kept an hour), the ready record retracted (the
    /// node no longer vouches for it), the replica marked changed, the leader woken.
    public static func recordExit(_ record: ExitRecord, keys: ClusterKeys) -> [RedisCommand] {
        exitWrites(record, keys: keys) + [RedisCommand("SADD", keys.changedReplicas, record.tag),
                                          RedisCommand("PUBLISH", keys.wake, DocumentCodec.encode(WakeUp(event: .exited, subject: record.tag)))]
    }

    /// The exit record and the retraction alone, for a caller that marks many replicas changed
    /// in one `SADD` and wakes the leader once (the simulated fleet).
    public static func exitWrites(_ record: ExitRecord, keys: ClusterKeys) -> [RedisCommand] {
        [RedisCommand("SET", keys.exit(record.tag), DocumentCodec.encode(record), "EX", 3600),
         RedisCommand("DEL", keys.ready(record.tag))]
    }

    /// KEYS: owner, record, nodes, nodes:changed.  ARGV: owner document, record TTL (ms),
    /// record, id, node TTL (ms), wake channel, wake-up. Renews (or takes back) the claim if it
    /// is this agent's, writes the record and the lease (Redis's `TIME` + the node TTL), adds
    /// the node to `nodes:changed`, publishes the wake-up; returns the claim's fate (1 kept, 0
    /// another agent's), Redis's time (ms), and whether the lease was there (1) or not (0).
    static let registerScript = RedisScript("""
        local claim = 0
        local current = redis.call('GET', KEYS[1])
        if current == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) claim = 1
        elseif current == false then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) claim = 1 end
        redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[2])
        local had = redis.call('ZSCORE', KEYS[3], ARGV[4])
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        redis.call('ZADD', KEYS[3], string.format('%.0f', now + tonumber(ARGV[5])), ARGV[4])
        redis.call('SADD', KEYS[4], ARGV[4])
        redis.call('PUBLISH', ARGV[6], ARGV[7])
        return {claim, string.format('%.0f', now), had and 1 or 0}
        """)
}
