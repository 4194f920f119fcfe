/// The leader's writes, each a fenced script (`KEYS[1]` the lease, `ARGV[1]` the leader's lease
/// value; see ``FencedScript``). Every key a script touches is declared in `KEYS`.
enum ControllerScripts {
    /// KEYS: lease, checkpoint, checkpoint:epoch.  ARGV: value, checkpoint, epoch.
    static let writeCheckpoint = FencedScript(body: """
        redis.call('SET', KEYS[2], ARGV[2])
        redis.call('SET', KEYS[3], ARGV[3])
        return 1
        """)

    /// KEYS: lease, snapshot.  ARGV: value, snapshot, channel, notification.
    static let publishSnapshot = FencedScript(body: """
        redis.call('SET', KEYS[2], ARGV[2])
        redis.call('PUBLISH', ARGV[3], ARGV[4])
        return 1
        """)

    /// KEYS: lease, assignments, assignments:version, replica config.
    /// ARGV: value, tag, assignment, node notify channel, user config document.
    static let assign = FencedScript(body: """
        redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
        redis.call('SET', KEYS[4], ARGV[5])
        local version = redis.call('INCR', KEYS[3])
        redis.call('PUBLISH', ARGV[4], version)
        return 1
        """)

    /// KEYS: lease, drain.  ARGV: value, drain request, control channel, control message, node notify channel.
    static let drain = FencedScript(body: """
        redis.call('SET', KEYS[2], ARGV[2])
        redis.call('PUBLISH', ARGV[3], ARGV[4])
        redis.call('PUBLISH', ARGV[5], 'drain')
        return 1
        """)

    /// KEYS: lease, replica config.  ARGV: value, user config document, control channel, control message.
    static let pushUserConfig = FencedScript(body: """
        redis.call('SET', KEYS[2], ARGV[2])
        redis.call('PUBLISH', ARGV[3], ARGV[4])
        return 1
        """)

    /// KEYS: lease, assignments, assignments:version, then the replica's keys.
    /// ARGV: value, tag, node notify channel.
    static let forget = FencedScript(body: """
        redis.call('HDEL', KEYS[2], ARGV[2])
        for i = 4, #KEYS do redis.call('DEL', KEYS[i]) end
        local version = redis.call('INCR', KEYS[3])
        redis.call('PUBLISH', ARGV[3], version)
        return 1
        """)

    /// KEYS: lease, goal.  ARGV: value, outcome, channel.
    static let settleGoal = FencedScript(body: """
        redis.call('SET', KEYS[2], ARGV[2], 'EX', 86400)
        redis.call('PUBLISH', ARGV[3], ARGV[2])
        return 1
        """)

    /// KEYS: lease, events.  ARGV: value, cap, epoch, controller, at, then per event: kind,
    /// backend, replica, goal, message.
    static let appendEvents = FencedScript(body: """
        for i = 6, #ARGV, 5 do
            redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'epoch', ARGV[3], 'controller', ARGV[4], 'at', ARGV[5],
                'kind', ARGV[i], 'backend', ARGV[i + 1], 'replica', ARGV[i + 2], 'goal', ARGV[i + 3], 'message', ARGV[i + 4])
        end
        return 1
        """)

    /// KEYS: lease, status.  ARGV: value, status.
    static let writeStatus = FencedScript(body: """
        redis.call('SET', KEYS[2], ARGV[2])
        return 1
        """)
}
