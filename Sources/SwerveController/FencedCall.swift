import SwerveCore
import SwerveProtocol
public import SwerveRedis

/// One write of the leader: a fenced script with its keys and arguments. Each constructor below
/// is the only place its script's `KEYS`/`ARGV` layout is spelled; ``LeadershipScope`` prepends
/// the lease key and value (`KEYS[1]`, `ARGV[1]`) that the fence checks (see ``FencedScript``).
/// Every key a script touches is declared in `KEYS`.
public struct FencedCall: Sendable {
    /// What it writes (`assign`, `drain`…), for logs and tests.
    public let name: String
    let script: FencedScript
    /// After the lease key.
    let keys: [String]
    /// After the lease value.
    let arguments: [any RedisArgumentConvertible]

    /// A call of any fenced script (tests use their own); the leader uses the named ones.
    public init(_ script: FencedScript, name: String = "custom", keys: [String], arguments: [any RedisArgumentConvertible]) {
        self.name = name
        self.script = script
        self.keys = keys
        self.arguments = arguments
    }

    /// The command that runs it under the lease `leaseValue` of `lease`.
    func command(lease: String, leaseValue: String) -> RedisCommand {
        script.script.command(keys: [lease] + keys, arguments: [leaseValue] + arguments)
    }
}

extension FencedCall {
    /// The scripts a ``FencedBatch`` can run together: every named call's but `takeChanges`
    /// (read in the observation's own pipeline, for its reply). Append only: a batch names a
    /// script by its position.
    static let batchable: [FencedScript] = [
        writeCheckpointScript, pruneNodeScript, writeStatusScript, publishRoutingScript, publishDeltaScript, publishSnapshotScript,
        assignScript, drainScript, pushUserConfigScript, forgetScript, settleGoalScript, appendEventsScript, readLoadsScript,
    ]

    /// A checkpoint — its header and the parts that changed (see ``CheckpointLedger``) — and
    /// its epoch (a floor for the next leader's); and the request stream trimmed to its cursor
    /// in the same script: an entry leaves the stream only once a checkpoint that applied it is
    /// stored, so nothing a leader has not applied is ever trimmed, and the stream does not
    /// grow with the cluster's age.
    static func writeCheckpoint(_ write: CheckpointWrite, lastApplied: RequestID?, epoch: Int64, keys: ClusterKeys) -> FencedCall {
        var arguments: [any RedisArgumentConvertible] = [write.header, epoch, lastApplied?.description ?? "", write.replacesAll ? "1" : "0", write.removed.count]
        arguments.reserveCapacity(arguments.count + write.removed.count + 2 * write.parts.count)
        for field in write.removed { arguments.append(field) }
        for part in write.parts {
            arguments.append(part.field)
            arguments.append(part.value)
        }
        return FencedCall(writeCheckpointScript, name: "writeCheckpoint", keys: [keys.checkpoint, keys.checkpointEpoch, keys.requests, keys.checkpointParts],
                          arguments: arguments)
    }

    /// KEYS: lease, checkpoint, checkpoint:epoch, requests, checkpoint:parts.  ARGV: value,
    /// header, epoch, the last applied request id ("" for none), "1" to replace every part,
    /// how many parts to delete (d), the d fields, then field, value… to set. `MINID` keeps the
    /// cursor's own entry. Fields go in chunks: Lua's `unpack` has a stack limit.
    private static let writeCheckpointScript = FencedScript(body: """
        if ARGV[5] == '1' then redis.call('DEL', KEYS[5]) end
        local d = tonumber(ARGV[6])
        for i = 7, 6 + d, 1000 do redis.call('HDEL', KEYS[5], unpack(ARGV, i, math.min(i + 999, 6 + d))) end
        for i = 7 + d, #ARGV, 1000 do redis.call('HSET', KEYS[5], unpack(ARGV, i, math.min(i + 999, #ARGV))) end
        redis.call('SET', KEYS[2], ARGV[2])
        redis.call('SET', KEYS[3], ARGV[3])
        if ARGV[4] ~= '' then redis.call('XTRIM', KEYS[4], 'MINID', ARGV[4]) end
        return 1
        """)

    /// Removes a node gone for good from the `nodes` set, with its assignment hash and version
    /// (see ``GoneNodes``) — only if, inside the script, its record is still absent, it was
    /// last seen before `cutoff` (ms), and nothing is assigned to it.
    static func pruneNode(_ id: String, cutoff: Int64, keys: ClusterKeys) -> FencedCall {
        FencedCall(pruneNodeScript, name: "pruneNode", keys: [keys.nodes, keys.node(id), keys.assignments(id), keys.assignmentsVersion(id)],
                   arguments: [id, cutoff])
    }

    /// KEYS: lease, nodes, node record, assignments, assignments:version.  ARGV: value, id, cutoff.
    private static let pruneNodeScript = FencedScript(body: """
        if redis.call('EXISTS', KEYS[3]) == 1 or redis.call('HLEN', KEYS[4]) > 0 then return 0 end
        local seen = redis.call('ZSCORE', KEYS[2], ARGV[2])
        if not seen or tonumber(seen) >= tonumber(ARGV[3]) then return 0 end
        redis.call('ZREM', KEYS[2], ARGV[2])
        redis.call('DEL', KEYS[4], KEYS[5])
        return 1
        """)

    /// Takes (`SPOP`) up to `count` replicas and nodes marked changed, and lists the nodes whose
    /// lease ran out after `since` (Redis ms; none when nil) up to now: what an incremental
    /// observation re-reads. Replies `{now (ms, Redis's clock), replica tags, node ids, lapsed
    /// node ids}`. Fenced, so a deposed leader still stepping cannot take changes away from the
    /// leader.
    static func takeChanges(count: Int, since: Int64?, keys: ClusterKeys) -> FencedCall {
        FencedCall(takeChangesScript, name: "takeChanges", keys: [keys.changedReplicas, keys.changedNodes, keys.nodes],
                   arguments: [count, since.map(String.init) ?? ""])
    }

    /// KEYS: lease, replicas:changed, nodes:changed, nodes.  ARGV: value, count, since ("" none).
    private static let takeChangesScript = FencedScript(body: """
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        local replicas = redis.call('SPOP', KEYS[2], ARGV[2])
        local nodes = redis.call('SPOP', KEYS[3], ARGV[2])
        local lapsed = {}
        if ARGV[3] ~= '' then lapsed = redis.call('ZRANGEBYSCORE', KEYS[4], '(' .. ARGV[3], string.format('%.0f', now)) end
        return {string.format('%.0f', now), replicas, nodes, lapsed}
        """)

    /// The routers' load reports, summed per backend: `{backend, total, …}` (totals as
    /// decimal strings). A router whose report expired leaves the set here. Each router's value
    /// is capped at ``maximumReportedLoad`` and anything unreadable counts 0: a hostile report
    /// can add at most that much to a backend.
    static func readLoads(keys: ClusterKeys) -> FencedCall {
        FencedCall(readLoadsScript, name: "readLoads", keys: [keys.routerLoads], arguments: [keys.prefix + "router:", maximumReportedLoad])
    }

    /// The most load one router's report counts for, per backend.
    static let maximumReportedLoad = 1_000_000

    /// KEYS: lease, routers:load.  ARGV: value, the router key prefix, the cap.
    private static let readLoadsScript = FencedScript(body: """
        local cap = tonumber(ARGV[3])
        local totals, order = {}, {}
        for _, id in ipairs(redis.call('SMEMBERS', KEYS[2])) do
          local fields = redis.call('HGETALL', ARGV[2] .. id .. ':load')
          if #fields == 0 then
            redis.call('SREM', KEYS[2], id)
          else
            for i = 1, #fields, 2 do
              local value = tonumber(fields[i + 1])
              if value == nil or value ~= value or value < 0 then value = 0 end
              if value > cap then value = cap end
              if totals[fields[i]] == nil then totals[fields[i]] = 0; order[#order + 1] = fields[i] end
              totals[fields[i]] = totals[fields[i]] + value
            end
          end
        end
        local out = {}
        for _, backend in ipairs(order) do out[#out + 1] = backend; out[#out + 1] = string.format('%.0f', totals[backend]) end
        return out
        """)

    /// The batch of requests a step is about to apply (see `RequestAdmission`).
    static func recordRequestAttempt(_ attempt: RequestAttempt, keys: ClusterKeys) -> FencedCall {
        FencedCall(writeStatusScript, name: "recordRequestAttempt", keys: [keys.requestAttempt],
                   arguments: [DocumentCodec.encode(RequestAttemptDocument(attempt))])
    }

    /// Every backend's status.
    static func writeStatus(_ status: [String: BackendStatus], keys: ClusterKeys) -> FencedCall {
        FencedCall(writeStatusScript, name: "writeStatus", keys: [keys.status], arguments: [DocumentCodec.encode(StatusDocument(backends: status))])
    }

    /// KEYS: lease, a key.  ARGV: value, its new value (the status, the request attempt).
    private static let writeStatusScript = FencedScript(body: """
        redis.call('SET', KEYS[2], ARGV[2])
        return 1
        """)

    /// The whole routing view under `epoch`, the deltas after the last one dropped, then its
    /// notice to routers.
    static func publishSnapshot(routing view: RoutingView, epoch: Int64, keys: ClusterKeys) -> FencedCall {
        FencedCall(publishRoutingScript, name: "publishSnapshot", keys: [keys.routingSnapshot, keys.routingDeltas],
                   arguments: [DocumentCodec.encode(Snapshot(epoch: epoch, view: view)), keys.snapshots,
                               DocumentCodec.encode(SnapshotNotice(kind: .routing, epoch: epoch, version: view.version))])
    }

    /// KEYS: lease, snapshot, deltas.  ARGV: value, snapshot, channel, notice.
    private static let publishRoutingScript = FencedScript(body: """
        redis.call('SET', KEYS[2], ARGV[2])
        redis.call('DEL', KEYS[3])
        redis.call('PUBLISH', ARGV[3], ARGV[4])
        return 1
        """)

    /// A routing delta under `epoch`: appended to the deltas after the snapshot, and sent to
    /// routers as the notice itself.
    static func publishRoutingDelta(_ delta: RoutingDelta, epoch: Int64, keys: ClusterKeys) -> FencedCall {
        FencedCall(publishDeltaScript, name: "publishDelta", keys: [keys.routingDeltas],
                   arguments: [DocumentCodec.encode(SnapshotNotice(epoch: epoch, delta: delta)), keys.snapshots])
    }

    /// KEYS: lease, deltas.  ARGV: value, notice with its delta, channel.
    private static let publishDeltaScript = FencedScript(body: """
        redis.call('RPUSH', KEYS[2], ARGV[2])
        redis.call('PUBLISH', ARGV[3], ARGV[2])
        return 1
        """)

    /// A snapshot under `epoch`, then its notice to routers.
    static func publishSnapshot(configs view: BackendConfigsView, epoch: Int64, keys: ClusterKeys) -> FencedCall {
        FencedCall(publishSnapshotScript, name: "publishSnapshot", keys: [keys.configsSnapshot],
                   arguments: [DocumentCodec.encode(Snapshot(epoch: epoch, view: view)), keys.snapshots,
                               DocumentCodec.encode(SnapshotNotice(kind: .configs, epoch: epoch, version: view.version))])
    }

    /// KEYS: lease, snapshot.  ARGV: value, snapshot, channel, notice.
    private static let publishSnapshotScript = FencedScript(body: """
        redis.call('SET', KEYS[2], ARGV[2])
        redis.call('PUBLISH', ARGV[3], ARGV[4])
        return 1
        """)

    /// The replica's assignment on its node and its user config; the node is told.
    static func assign(_ assignment: ReplicaAssignment, keys: ClusterKeys) -> FencedCall {
        let tag = assignment.replica.tag
        let node = assignment.replica.node
        return FencedCall(assignScript, name: "assign", keys: [keys.assignments(node), keys.assignmentsVersion(node), keys.userConfig(tag)],
                          arguments: [tag, DocumentCodec.encode(AssignmentDocument(assignment)), keys.nodeNotify(node),
                                      DocumentCodec.encode(UserConfigDocument(tag: tag, userConfig: assignment.userConfig))])
    }

    /// KEYS: lease, assignments, assignments:version, replica config.
    /// ARGV: value, tag, assignment, node notify channel, user config document.
    private static let assignScript = FencedScript(body: """
        redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
        redis.call('SET', KEYS[4], ARGV[5])
        local version = redis.call('INCR', KEYS[3])
        redis.call('PUBLISH', ARGV[4], version)
        return 1
        """)

    /// Tells the replica (and its node, which enforces the deadline) to stop.
    static func drain(_ replica: ReplicaReference, _ request: DrainRequest, keys: ClusterKeys) -> FencedCall {
        FencedCall(drainScript, name: "drain", keys: [keys.drain(replica.tag)],
                   arguments: [DocumentCodec.encode(request), keys.control(replica.tag), DocumentCodec.encode(ControlMessage(event: .drain)),
                               keys.nodeNotify(replica.node)])
    }

    /// KEYS: lease, drain.  ARGV: value, drain request, control channel, control message, node notify channel.
    private static let drainScript = FencedScript(body: """
        redis.call('SET', KEYS[2], ARGV[2])
        redis.call('PUBLISH', ARGV[3], ARGV[4])
        redis.call('PUBLISH', ARGV[5], 'drain')
        return 1
        """)

    /// A new user config for a running replica, and a hint to read it.
    static func pushUserConfig(_ replica: ReplicaReference, _ userConfig: JSONValue?, keys: ClusterKeys) -> FencedCall {
        FencedCall(pushUserConfigScript, name: "pushUserConfig", keys: [keys.userConfig(replica.tag)],
                   arguments: [DocumentCodec.encode(UserConfigDocument(tag: replica.tag, userConfig: userConfig)), keys.control(replica.tag),
                               DocumentCodec.encode(ControlMessage(event: .config))])
    }

    /// KEYS: lease, replica config.  ARGV: value, user config document, control channel, control message.
    private static let pushUserConfigScript = FencedScript(body: """
        redis.call('SET', KEYS[2], ARGV[2])
        redis.call('PUBLISH', ARGV[3], ARGV[4])
        return 1
        """)

    /// Removes the replica's assignment and every key of it; the node is told.
    static func forget(_ replica: ReplicaReference, keys: ClusterKeys) -> FencedCall {
        FencedCall(forgetScript, name: "forget", keys: [keys.assignments(replica.node), keys.assignmentsVersion(replica.node)] + keys.replicaKeys(replica.tag),
                   arguments: [replica.tag, keys.nodeNotify(replica.node)])
    }

    /// KEYS: lease, assignments, assignments:version, then the replica's keys.
    /// ARGV: value, tag, node notify channel.
    private static let forgetScript = FencedScript(body: """
        redis.call('HDEL', KEYS[2], ARGV[2])
        for i = 4, #KEYS do redis.call('DEL', KEYS[i]) end
        local version = redis.call('INCR', KEYS[3])
        redis.call('PUBLISH', ARGV[3], version)
        return 1
        """)

    /// The goal's outcome, kept a day, and the message clients waiting on it read.
    static func settleGoal(_ outcome: GoalOutcome, keys: ClusterKeys) -> FencedCall {
        FencedCall(settleGoalScript, name: "settleGoal", keys: [keys.goal(outcome.goal)], arguments: [DocumentCodec.encode(GoalOutcomeDocument(outcome)), keys.goals])
    }

    /// KEYS: lease, goal.  ARGV: value, outcome, channel.
    private static let settleGoalScript = FencedScript(body: """
        redis.call('SET', KEYS[2], ARGV[2], 'EX', 86400)
        redis.call('PUBLISH', ARGV[3], ARGV[2])
        return 1
        """)

    /// The entries, appended in order to the events stream, which keeps about
    /// ``ClusterKeys/eventsLimit`` of them.
    static func appendEvents(_ entries: [EventEntry], keys: ClusterKeys) -> FencedCall {
        var arguments: [any RedisArgumentConvertible] = [ClusterKeys.eventsLimit, EventEntry.fieldCount * 2]
        for entry in entries {
            for field in entry.fields() { arguments += [field.name, field.value] }
        }
        return FencedCall(appendEventsScript, name: "appendEvents", keys: [keys.events], arguments: arguments)
    }

    /// KEYS: lease, events.  ARGV: value, cap, values per entry (n), then each entry's n
    /// values: field, value, field, value…
    private static let appendEventsScript = FencedScript(body: """
        local n = tonumber(ARGV[3])
        for i = 4, #ARGV, n do
            redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, i, i + n - 1))
        end
        return 1
        """)
}
