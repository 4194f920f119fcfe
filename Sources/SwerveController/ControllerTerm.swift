import Foundation
import Logging
import SwerveCore
import SwerveProtocol
import SwerveRedis
import SwerveSystem

/// One term of leadership: load the checkpoint, repeat what the previous leader may not have
/// finished, then reconcile on every wake-up until the term ends (its task is cancelled).
struct ControllerTerm {
    let scope: LeadershipScope
    let keys: ClusterKeys
    let client: RedisClient
    let settings: ReconcilerSettings
    let logger: Logger
    var state = BackendState()
    var lastStatus: [String: BackendStatus] = [:]
    /// Whether this term wrote the status yet (its first step always does).
    var statusWritten = false
    /// The grace adopted RUNNING replicas get to confirm their ready keys (see ``AdoptionGrace``).
    var adoption = AdoptionGrace(adopted: [], now: .now, grace: .zero)
    /// How long adopted replicas get to confirm (the workers' heartbeat TTL).
    let confirmationGrace: Duration
    /// Inert unless a test armed one (see ``ControllerFailpoint``).
    let failpoints: Failpoints
    let metrics: ControllerMetrics

    /// Loads the checkpoint and repeats its idempotent recovery actions — at the start of a
    /// term, and again after a step failed part-way (Redis, not memory, is then the truth: the
    /// failed step's checkpoint and some of its actions may already be there). One that cannot
    /// be decoded is left untouched: it says why and returns false, and the term ends.
    ///
    /// The loaded state's status is written before recovery announces goal outcomes again: a
    /// failed step may have written its checkpoint but not the status after it (a connection
    /// lost part-way), and a client woken by a goal must never read an older status. After a
    /// failed step (`afterFailedStep`), requests it applied (its checkpoint landed) are counted.
    mutating func load(afterFailedStep: Bool = false) async throws -> Bool {
        let appliedBefore = state.requestsApplied
        guard let bytes = try await client.send("GET", keys.checkpoint).bytes else {
            logger.info("no checkpoint: starting empty", metadata: ["epoch": "\(scope.epoch)"])
            return true
        }
        do {
            state = try Checkpoint.decode(bytes)
            if afterFailedStep, state.requestsApplied > appliedBefore {
                metrics.requestsApplied.increment(by: state.requestsApplied - appliedBefore)
            }
        } catch {
            logger.critical("refusing to lead and releasing the lease: \(keys.checkpoint): \(error.message)")
            return false
        }
        let replicas = state.backends.reduce(state.retiredReplicas.count) { $0 + $1.replicas.count }
        adoption = AdoptionGrace(adopted: state.replicaTags(placedIn: [.running]), now: .now, grace: confirmationGrace)
        metrics.record(state)
        logger.info("loaded the checkpoint", metadata: ["epoch": "\(scope.epoch)", "backends": "\(state.backends.count)", "replicas": "\(replicas)"])
        // The status of the loaded state goes out first, before any goal outcome recovery
        // announces again.
        let status = Dictionary(uniqueKeysWithValues: state.backends.map { ($0.tag, $0.status) })
        try await execute(Reconciler.recoveryActions(for: state), status: status)
        lastStatus = status
        statusWritten = true
        return true
    }

    /// One step: observe (two round trips), reconcile, execute (one round trip).
    mutating func step(randomSeed: UInt64) async throws {
        let started = ContinuousClock.now
        let observations = try await observe(randomSeed: randomSeed)
        let (next, actions) = Reconciler.reconcile(state, observations, settings: settings)
        // The state advances only once its actions were carried out; if they fail part-way the
        // caller reloads the checkpoint (see `load`). The status goes out in the same pipeline, before any goal outcome: a client woken by
        // its goal reads the status the goal was settled on.
        // Status derives from the state: recompute it only when the state changed (there are
        // actions) or this term has not written it yet.
        let status = actions.isEmpty && statusWritten ? lastStatus : Dictionary(uniqueKeysWithValues: next.backends.map { ($0.tag, $0.status) })
        try await execute(actions, status: status == lastStatus && statusWritten ? nil : status,
                          appliedRequest: next.lastAppliedRequest != state.lastAppliedRequest,
                          events: actions.isEmpty ? [] : ClusterEvent.between(state, next, actions: actions))
        if next.requestsApplied > state.requestsApplied { metrics.requestsApplied.increment(by: next.requestsApplied - state.requestsApplied) }
        if !actions.isEmpty || !statusWritten { metrics.record(next) }
        state = next
        statusWritten = true
        metrics.reconcileDuration.record(duration: ContinuousClock.now - started)
        if status != lastStatus {
            lastStatus = status
            for (tag, backendStatus) in status.sorted(by: { $0.key < $1.key }) {
                logger.info("\(tag): \(backendStatus.kind.rawValue), \(backendStatus.reason)", metadata: ["backend": "\(tag)"])
            }
        }
    }

    private mutating func observe(randomSeed: UInt64) async throws -> Observations {
        // Exclusive start after the last applied request ("(<id>"), or the stream's beginning.
        let start = state.lastAppliedRequest.map { "(" + $0.description } ?? "-"
        let placed = state.replicaTags(placedIn: [.starting, .running, .shouldStop, .stopping])
        var first = [RedisCommand("XRANGE", keys.requests, start, "+", "COUNT", 100), RedisCommand("ZRANGE", keys.nodes, 0, -1)]
        if !placed.isEmpty {
            first.append(RedisCommand("MGET", arguments: placed.flatMap { [keys.ready($0), keys.drained($0), keys.exit($0)] }))
        }
        let replies = try await client.pipeline(first)
        for (command, reply) in zip(first, replies) {
            if let message = reply.errorMessage { throw RedisError(.server, "Redis refused \(command.name) while observing: \(message)") }
        }
        let nodeIDs = replies[1].array?.compactMap(\.string) ?? []
        var nodes: [String: NodeInfo] = [:]
        if !nodeIDs.isEmpty {
            let records = try await client.send(RedisCommand("MGET", arguments: nodeIDs.map(keys.node))).array ?? []
            for (id, reply) in zip(nodeIDs, records) {
                if let bytes = reply.bytes, let record = try? DocumentCodec.decode(NodeRecord.self, from: bytes, source: keys.node(id)) {
                    nodes[id] = NodeInfo(id: id, total: record.resources, alive: true)
                } else {
                    nodes[id] = NodeInfo(id: id, total: .zero, alive: false)
                }
            }
        }
        var replicas: [String: ReplicaObservation] = [:]
        let now = ContinuousClock.now
        if placed.count > 0, let values = replies[2].array {
            for (index, tag) in placed.enumerated() {
                var observation = ReplicaObservation()
                if let bytes = values[index * 3].bytes, let ready = try? DocumentCodec.decode(ReadyRecord.self, from: bytes, source: keys.ready(tag)) {
                    observation.endpoint = ReplicaEndpoint(address: ready.address, pid: ready.pid)
                }
                observation.drained = !values[index * 3 + 1].isNull
                if let bytes = values[index * 3 + 2].bytes, let exit = try? DocumentCodec.decode(ExitRecord.self, from: bytes, source: keys.exit(tag)) {
                    observation.exit = exit.reason
                }
                replicas[tag] = adoption.filter(observation, tag: tag, now: now)
            }
        }
        var requests: [Request] = []
        for entry in replies[0].array ?? [] {
            guard let parts = entry.array, parts.count == 2, let idText = parts[0].string, let id = RequestID(idText),
                  let fields = parts[1].array else { continue }
            var values: [String: [UInt8]] = [:]
            for index in stride(from: 0, to: fields.count - 1, by: 2) {
                if let name = fields[index].string, let value = fields[index + 1].bytes { values[name] = value }
            }
            guard let goal = values["goal"].map({ String(decoding: $0, as: UTF8.self) }) else { continue }
            do {
                let operation = try JSONDecoder().decode(Request.Operation.self, from: Data(values["request"] ?? []))
                requests.append(Request(id: id, goal: goal, operation: operation))
            } catch {
                logger.error("a request that cannot be read fails its goal", metadata: ["request": "\(idText)", "goal": "\(goal)"])
                try await scope.writeAll([goalCall(GoalOutcome(goal: goal, failure: "request \(idText) cannot be read: \(error)"))])
            }
        }
        return Observations(now: Timestamp(milliseconds: wallClockMilliseconds()), requests: requests,
                            nodes: nodes, replicas: replicas, randomSeed: randomSeed)
    }

    /// Carries out a step's actions, in order, as fenced scripts in one round trip; a changed
    /// `status` is written right after the checkpoint, then the step's `events`. `appliedRequest`:
    /// the checkpoint records a newly applied request (where ``ControllerFailpoint/afterRequest`` sits).
    private func execute(_ actions: [Action], status: [String: BackendStatus]? = nil, appliedRequest: Bool = false,
                         events: [ClusterEvent] = []) async throws {
        var calls: [(script: FencedScript, keys: [String], arguments: [any RedisArgumentConvertible])] = []
        // Where each failpoint sits: after the call at this index.
        var failpointIndex: [ControllerFailpoint: Int] = [:]
        for action in actions {
            switch action {
            case .writeCheckpoint(let state):
                calls.append((ControllerScripts.writeCheckpoint, [keys.checkpoint, keys.checkpointEpoch], [Checkpoint.encode(state), scope.epoch]))
                failpointIndex[.afterCheckpoint] = calls.count - 1
                if appliedRequest { failpointIndex[.afterRequest] = calls.count - 1 }
                if let status { calls.append((ControllerScripts.writeStatus, [keys.status], [Self.json(status)])) }
                if !events.isEmpty { calls.append(eventsCall(events)) }
            case .publishBackendConfigs(let view):
                calls.append((ControllerScripts.publishSnapshot, [keys.configsSnapshot],
                              [Self.json(Snapshot(epoch: scope.epoch, view: view)), keys.snapshots, Self.json(SnapshotNotice(kind: .configs, epoch: scope.epoch, version: view.version))]))
            case .publishRoutingView(let view):
                calls.append((ControllerScripts.publishSnapshot, [keys.routingSnapshot],
                              [Self.json(Snapshot(epoch: scope.epoch, view: view)), keys.snapshots, Self.json(SnapshotNotice(kind: .routing, epoch: scope.epoch, version: view.version))]))
            case .assign(let assignment):
                let tag = assignment.replica.tag
                let node = assignment.replica.node
                calls.append((ControllerScripts.assign, [keys.assignments(node), keys.assignmentsVersion(node), keys.userConfig(tag)],
                              [tag, DocumentCodec.encode(AssignmentDocument(assignment)), keys.nodeNotify(node),
                               DocumentCodec.encode(UserConfigDocument(tag: tag, userConfig: assignment.userConfig))]))
                failpointIndex[.afterAssign] = calls.count - 1
            case .drain(let replica, let deadline):
                calls.append(drainCall(replica, DrainRequest(tag: replica.tag, deadline: deadline.milliseconds, force: false)))
            case .forceKill(let replica):
                guard !replica.node.isEmpty else { continue }
                calls.append(drainCall(replica, DrainRequest(tag: replica.tag, deadline: 0, force: true)))
            case .pushUserConfig(let replica, let userConfig):
                calls.append((ControllerScripts.pushUserConfig, [keys.userConfig(replica.tag)],
                              [DocumentCodec.encode(UserConfigDocument(tag: replica.tag, userConfig: userConfig)), keys.control(replica.tag),
                               DocumentCodec.encode(ControlMessage(event: .config))]))
            case .forget(let replica):
                calls.append((ControllerScripts.forget, [keys.assignments(replica.node), keys.assignmentsVersion(replica.node)] + keys.replicaKeys(replica.tag),
                              [replica.tag, keys.nodeNotify(replica.node)]))
            case .completeGoal(let goal):
                if failpointIndex[.beforeGoalOutcomes] == nil { failpointIndex[.beforeGoalOutcomes] = calls.count - 1 }
                calls.append(goalCall(GoalOutcome(goal: goal)))
            case .failGoal(let goal, let reason):
                if failpointIndex[.beforeGoalOutcomes] == nil { failpointIndex[.beforeGoalOutcomes] = calls.count - 1 }
                calls.append(goalCall(GoalOutcome(goal: goal, failure: reason)))
            }
        }
        // No checkpoint this step (the state did not change), but the status differs from what
        // this term last wrote (its first step): write it on its own.
        if let status, !actions.contains(where: { if case .writeCheckpoint = $0 { true } else { false } }) {
            calls.insert((ControllerScripts.writeStatus, [keys.status], [Self.json(status)]), at: 0)
            failpointIndex = failpointIndex.mapValues { $0 + 1 }
        }
        // "Before the actions" needs actions after it; "before goal outcomes" something before them.
        if failpointIndex[.afterCheckpoint] == calls.count - 1 { failpointIndex[.afterCheckpoint] = nil }
        if failpointIndex[.beforeGoalOutcomes] == -1 { failpointIndex[.beforeGoalOutcomes] = nil }
        // A test armed a failpoint this step reaches: write up to it, let it fire, then go on.
        if !failpoints.plan.isEmpty,
           let (point, index) = failpointIndex.sorted(by: { $0.value < $1.value }).first(where: { failpoints.isArmed($0.key.rawValue) }) {
            try await scope.writeAll(Array(calls[...index]))
            try failpoints.hit(point.rawValue)
            calls.removeFirst(index + 1)
        }
        try await scope.writeAll(calls)
        DecisionLog.log(actions, now: Timestamp(milliseconds: wallClockMilliseconds()), logger: logger)
    }

    private func drainCall(_ replica: ReplicaReference, _ request: DrainRequest) -> (script: FencedScript, keys: [String], arguments: [any RedisArgumentConvertible]) {
        (ControllerScripts.drain, [keys.drain(replica.tag)],
         [DocumentCodec.encode(request), keys.control(replica.tag), DocumentCodec.encode(ControlMessage(event: .drain)), keys.nodeNotify(replica.node)])
    }

    private func eventsCall(_ events: [ClusterEvent]) -> (script: FencedScript, keys: [String], arguments: [any RedisArgumentConvertible]) {
        let controller = scope.leaseValue.split(separator: ":").dropLast().joined(separator: ":")
        var arguments: [any RedisArgumentConvertible] = [ClusterKeys.eventsLimit, scope.epoch, controller, wallClockMilliseconds()]
        for event in events { arguments += [event.kind.rawValue, event.backend, event.replica ?? "", event.goal ?? "", event.message] }
        return (ControllerScripts.appendEvents, [keys.events], arguments)
    }

    private func goalCall(_ outcome: GoalOutcome) -> (script: FencedScript, keys: [String], arguments: [any RedisArgumentConvertible]) {
        (ControllerScripts.settleGoal, [keys.goal(outcome.goal)], [Self.json(outcome), keys.goals])
    }

    static func json(_ value: some Encodable) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(value)).map(Array.init) ?? Array("null".utf8)
    }
}
