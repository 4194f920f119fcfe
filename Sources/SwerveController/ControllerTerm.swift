import CoreMetrics
import Foundation
import Logging
import Metrics
import SwerveCore
import SwerveErrors
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
    /// The status this term last wrote (its first step always writes one).
    var statusLedger = StatusLedger()
    /// The grace adopted RUNNING replicas and live nodes get to confirm their keys after every
    /// load (see ``AdoptionGrace``).
    var adoption = AdoptionGrace(adopted: [], now: .now, grace: .zero)
    /// How long they get: the node and heartbeat TTL plus the clients' longest reconnect backoff.
    let confirmationGrace: Duration
    /// Keys whose value this leader cannot read (a newer format?), each logged once.
    var unreadableLogged = Set<String>()
    /// What the last observation saw of the `nodes` set: when each node last registered (ms),
    /// and which still have a record (for ``GoneNodes``).
    var nodeSightings: (lastRegistered: [String: Int64], withRecord: Set<String>) = ([:], [])
    /// Inert unless a test armed one (see ``ControllerFailpoint``).
    let failpoints: Failpoints
    let metrics: ControllerMetrics
    /// Whether steps wait for Redis replicas before acting (decided again at every load).
    var replicaAcknowledgement = ReplicaAcknowledgement(configured: 0, timeout: .zero)
    /// Whether this controller process ever saw the checkpoint (across its terms).
    var memory = ClusterMemory()

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
        if try await replicaAcknowledgement.decide(client: client) {
            logger.info(replicaAcknowledgement.required > 0 ? "steps wait for Redis replicas to hold their checkpoint before acting"
                                                            : "Redis has no replica: steps act without waiting for one",
                        metadata: ["replicas": "\(replicaAcknowledgement.required)", "timeoutMs": "\(replicaAcknowledgement.timeout.wholeMilliseconds)"])
        }
        guard let bytes = try await client.send("GET", keys.checkpoint).bytes else {
            // No checkpoint: a new cluster — or a Redis that lost everything while workers still
            // run. Starting empty then would have every node agent stop every one of them.
            let reporting = try await replicasReportingReady(limit: 3)
            guard reporting.isEmpty, !memory.checkpointSeen else {
                let evidence = reporting.isEmpty ? "this controller loaded one before" : "replicas report ready (\(reporting.joined(separator: ", "))…)"
                logger.critical("""
                    refusing to lead and releasing the lease: Redis holds no checkpoint, but \(evidence): \
                    Redis lost its data. Starting from nothing would stop every replica. \
                    Restore Redis from a backup (its AOF or RDB file) and controllers resume where they were; or, to start \
                    the cluster over, stop every node agent (their workers stop with them) and start them again: once no \
                    replica reports ready, a controller starts empty. Node agents keep their workers meanwhile.
                    """)
                return false
            }
            logger.info("no checkpoint: starting empty", metadata: ["epoch": "\(scope.epoch)"])
            return true
        }
        memory.checkpointSeen()
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
        adoption = AdoptionGrace(adopted: state.replicaTags(placedIn: [.running]), nodes: state.liveNodes, now: .now, grace: confirmationGrace)
        metrics.record(state)
        logger.info("loaded the checkpoint", metadata: ["epoch": "\(scope.epoch)", "backends": "\(state.backends.count)", "replicas": "\(replicas)",
                                                        "liveNodes": "\(state.liveNodes.count <= DecisionLog.perKindLimit ? state.liveNodes.joined(separator: ",") : "\(state.liveNodes.count)")"])
        // The status of the loaded state goes out first, before any goal outcome recovery
        // announces again.
        let status = StatusLedger.status(of: state)
        let orphans = try await orphanedAssignments()
        for orphan in orphans {
            logger.warning("forgetting an assignment the checkpoint does not know (a step's writes broke after its checkpoint)",
                           metadata: ["replica": "\(orphan.tag)", "node": "\(orphan.node)"])
        }
        try await execute(Reconciler.recoveryActions(for: state) + orphans.map { .forget($0) }, status: status)
        statusLedger.wrote(status)
        return true
    }

    /// Up to `limit` replicas whose ready key exists (a `SCAN` of this cluster's ready keys).
    private func replicasReportingReady(limit: Int) async throws -> [String] {
        let pattern = keys.ready("*")
        var found: [String] = []
        var cursor = "0"
        repeat {
            let reply = try await client.send("SCAN", cursor, "MATCH", pattern, "COUNT", 1000).array ?? []
            guard reply.count == 2, let next = reply[0].string else { break }
            for key in reply[1].array?.compactMap(\.string) ?? [] where found.count < limit {
                found.append(String(key.dropFirst(keys.prefix.count + "replica:".count).dropLast(":ready".count)))
            }
            cursor = next
        } while cursor != "0" && found.count < limit
        return found
    }

    /// Reads every known node's assignment hash (two round trips) and returns the assignments
    /// the loaded state does not account for (see ``Reconciler/orphanedAssignments(in:assigned:)``).
    private func orphanedAssignments() async throws -> [ReplicaReference] {
        let listed = try await client.send("ZRANGE", keys.nodes, 0, -1).array?.compactMap(\.string) ?? []
        let nodes = Array(Set(listed).union(state.liveNodes)).sorted()
        guard !nodes.isEmpty else { return [] }
        let replies = try await client.pipeline(nodes.map { RedisCommand("HKEYS", keys.assignments($0)) })
        var assigned: [String: [String]] = [:]
        for (node, reply) in zip(nodes, replies) {
            if let message = reply.errorMessage { throw RedisError(.server, "Redis refused HKEYS \(keys.assignments(node)): \(message)") }
            assigned[node] = reply.array?.compactMap(\.string) ?? []
        }
        return Reconciler.orphanedAssignments(in: state, assigned: assigned)
    }

    /// One step: observe (two round trips), reconcile, execute (one round trip).
    mutating func step(randomSeed: UInt64) async throws {
        let started = ContinuousClock.now
        let observations = try await observe(randomSeed: randomSeed)
        let (next, actions) = Reconciler.reconcile(state, observations, settings: settings)
        // The state advances only once its actions were carried out; if they fail part-way the
        // caller reloads the checkpoint (see `load`). The status goes out in the same pipeline,
        // before any goal outcome: a client woken by its goal reads the status the goal was
        // settled on.
        let status = statusLedger.status(after: next, actions: actions)
        let changedStatus = statusLedger.change(to: status)
        try await execute(actions, status: changedStatus,
                          appliedRequest: next.lastAppliedRequest != state.lastAppliedRequest,
                          events: actions.isEmpty ? [] : ClusterEvent.between(state, next, actions: actions))
        let gone = GoneNodes.prunable(listed: nodeSightings.lastRegistered, withRecord: nodeSightings.withRecord,
                                      occupied: next.occupiedNodes, now: observations.now)
        for id in gone {
            if try await scope.write(.pruneNode(id, cutoff: GoneNodes.cutoff(now: observations.now), keys: keys)).integer == 1 {
                logger.info("removed a node gone for over an hour from the nodes set", metadata: ["node": "\(id)"])
            }
        }
        if next.liveNodes != state.liveNodes {
            // Which nodes the leader now counts as gone or alive: what an operator looks for
            // when replicas were replaced for their node.
            DecisionLog.write(DecisionLog.nodeLines(gone: Set(state.liveNodes).subtracting(next.liveNodes).sorted(),
                                                    alive: Set(next.liveNodes).subtracting(state.liveNodes).sorted(),
                                                    listed: Set(nodeSightings.lastRegistered.keys)), to: logger)
        }
        if next.requestsApplied > state.requestsApplied { metrics.requestsApplied.increment(by: next.requestsApplied - state.requestsApplied) }
        if !actions.isEmpty || statusLedger.written == nil { metrics.record(next) }
        state = next
        statusLedger.wrote(status)
        metrics.reconcileDuration.record(duration: ContinuousClock.now - started)
        if changedStatus != nil {
            for (tag, backendStatus) in status.sorted(by: { $0.key < $1.key }) {
                logger.info("\(tag): \(backendStatus.kind.rawValue), \(backendStatus.reason)", metadata: ["backend": "\(tag)"])
            }
        }
    }

    private mutating func observe(randomSeed: UInt64) async throws -> Observations {
        // Exclusive start after the last applied request ("(<id>"), or the stream's beginning.
        let start = state.lastAppliedRequest.map { "(" + $0.description } ?? "-"
        let placed = state.replicaTags(placedIn: [.starting, .running, .shouldStop, .stopping])
        var first = [RedisCommand("XRANGE", keys.requests, start, "+", "COUNT", 100), RedisCommand("ZRANGE", keys.nodes, 0, -1, "WITHSCORES"),
                     RedisCommand("GET", keys.requestAttempt), RedisCommand("HGETALL", keys.cordons)]
        if !placed.isEmpty {
            first.append(RedisCommand("MGET", arguments: placed.flatMap { [keys.ready($0), keys.drained($0), keys.exit($0)] }))
        }
        let replies = try await client.pipeline(first)
        for (command, reply) in zip(first, replies) {
            if let message = reply.errorMessage { throw RedisError(.server, "Redis refused \(command.name) while observing: \(message)") }
        }
        // `ZRANGE … WITHSCORES`: id, then when it last registered (ms).
        var lastRegistered: [String: Int64] = [:]
        let listed = replies[1].array ?? []
        for index in stride(from: 0, to: listed.count - 1, by: 2) {
            if let id = listed[index].string { lastRegistered[id] = listed[index + 1].string.flatMap(Double.init).map { Int64($0) } ?? .max }
        }
        let nodeIDs = lastRegistered.keys.sorted()
        let cordons = nodeCordons(replies[3])
        var nodes: [String: NodeInfo] = [:]
        let now = ContinuousClock.now
        var withRecord = Set<String>()
        if !nodeIDs.isEmpty {
            let records = try await client.send(RedisCommand("MGET", arguments: nodeIDs.map(keys.node))).array ?? []
            for (id, reply) in zip(nodeIDs, records) {
                if reply.bytes != nil { withRecord.insert(id) }
                guard let bytes = reply.bytes else {
                    nodes[id] = adoption.filter(node: id, nil, now: now) // missing: no news during the grace, then gone
                    continue
                }
                guard let record = readable(NodeRecord.self, bytes, key: keys.node(id)) else {
                    // Present but unreadable (a newer agent?): the agent is alive, its record says so.
                    nodes[id] = NodeInfo(id: id, total: .zero, alive: true, schedulable: false)
                    continue
                }
                nodes[id] = adoption.filter(node: id, NodeInfo(id: id, total: record.resources, alive: true, schedulable: cordons[id] == nil,
                                                               draining: record.draining == true || cordons[id] == .drain), now: now)
            }
        }
        // Known alive at the load, not listed now: no news during the grace (see AdoptionGrace).
        for id in adoption.nodesInGrace(now: now) where nodes[id] == nil {
            nodes[id] = adoption.filter(node: id, nil, now: now)
        }
        nodeSightings = (lastRegistered, withRecord)
        var replicas: [String: ReplicaObservation] = [:]
        if placed.count > 0, let values = replies[4].array {
            for (index, tag) in placed.enumerated() {
                var observation = ReplicaObservation()
                var unreadable = false
                if let bytes = values[index * 3].bytes {
                    if let ready = readable(ReadyRecord.self, bytes, key: keys.ready(tag)) {
                        observation.endpoint = ReplicaEndpoint(address: ready.address, pid: ready.pid)
                    } else {
                        unreadable = true
                    }
                }
                observation.drained = !values[index * 3 + 1].isNull
                if let bytes = values[index * 3 + 2].bytes {
                    // An exit record that cannot be read still says the process exited.
                    observation.exit = readable(ExitRecord.self, bytes, key: keys.exit(tag))?.reason ?? "exited (its record cannot be read)"
                }
                // A ready key that exists but cannot be read is a heartbeat in a format this
                // leader does not know: no news, never a lost heartbeat.
                if unreadable, observation.exit == nil, !observation.drained { continue }
                replicas[tag] = adoption.filter(observation, tag: tag, now: now)
            }
        }
        var requests: [Request] = []
        var refused: [RefusedRequest] = []
        for entry in replies[0].streamEntries {
            switch RequestEntry.decode(id: entry.id, fields: entry.fields, source: keys.requests) {
            case .success(let request):
                requests.append(request)
            case .failure(let unreadable):
                // XRANGE only returns stream ids; anything else is not an entry to move past.
                guard let id = RequestID(entry.id) else { continue }
                logger.error("a request that cannot be read fails its goal", metadata: [
                    "request": "\(entry.id)", "goal": "\(unreadable.goal ?? "none")", "error": "\(unreadable.error.message)"])
                refused.append(RefusedRequest(id: id, goal: unreadable.goal, reason: "request \(entry.id) cannot be read: \(unreadable.error.message)"))
            }
        }
        let admitted = try await admit(requests, refused: refused, record: replies[2])
        return Observations(now: wallClockNow(), requests: admitted.requests, refusedRequests: admitted.refused,
                            nodes: nodes, replicas: replicas, randomSeed: randomSeed)
    }

    /// `bytes` decoded, or nil when they cannot be (an unknown `schemaVersion`, say): logged
    /// once per key, naming it, so a flood of newer records does not flood the log.
    private mutating func readable<Document: ProtocolDocument>(_ type: Document.Type, _ bytes: [UInt8], key: String) -> Document? {
        do {
            return try DocumentCodec.decode(type, from: bytes, source: key)
        } catch {
            if unreadableLogged.count < 1_000, unreadableLogged.insert(key).inserted {
                logger.warning("cannot read a record: treating it as no news (logged once per key)", metadata: ["key": "\(key)", "error": "\(error.message)"])
            }
            return nil
        }
    }

    /// The cordons operators set, by node. One that cannot be read counts as a cordon (no new
    /// replicas), never as a drain: an unreadable value must not move replicas.
    private func nodeCordons(_ reply: RedisReply) -> [String: NodeCordonDocument.Mode] {
        var cordons: [String: NodeCordonDocument.Mode] = [:]
        for (node, bytes) in reply.fieldPairs {
            cordons[node] = (try? DocumentCodec.decode(NodeCordonDocument.self, from: bytes, source: "\(keys.cordons) field \(node)"))?.mode ?? .cordon
        }
        return cordons
    }

    /// Decides which requests this step applies (see ``RequestAdmission``) and records the
    /// attempt, fenced, before any is applied: a leader that crashes while applying a request
    /// leaves the record behind, and after ``RequestAdmission/maxAttempts`` such attempts the
    /// request is quarantined instead of crashing every leader in turn.
    private func admit(_ requests: [Request], refused: [RefusedRequest], record reply: RedisReply) async throws -> RequestAdmission.Decision {
        guard !requests.isEmpty else { return RequestAdmission.admit(requests: [], refused: refused, record: nil) }
        var record: RequestAttempt?
        if let bytes = reply.bytes {
            do {
                record = try DocumentCodec.decode(RequestAttemptDocument.self, from: bytes, source: keys.requestAttempt).attempt
            } catch {
                // Unreadable (a newer version?): be careful, as after a failed attempt.
                logger.warning("applying requests one at a time: \(error.message)")
                record = RequestAttempt(first: requests[0].id, last: requests[requests.count - 1].id, attempts: 0)
            }
        }
        let decision = RequestAdmission.admit(requests: requests, refused: refused, record: record)
        if let attempt = decision.record {
            if attempt.attempts > 1 {
                logger.warning("applying a request again after an attempt that did not finish", metadata: [
                    "request": "\(attempt.first)", "attempt": "\(attempt.attempts)", "of": "\(RequestAdmission.maxAttempts)"])
            }
            try await scope.write(.recordRequestAttempt(attempt, keys: keys))
        }
        if let quarantined = decision.quarantined {
            logger.error("quarantining a request", metadata: ["request": "\(quarantined.id)", "goal": "\(quarantined.goal ?? "none")"])
        }
        if !failpoints.plan.isEmpty {
            for request in decision.requests { try failpoints.hit(ControllerFailpoint.applyingRequest.rawValue, subject: request.goal) }
        }
        return decision
    }

    /// Carries out a step's actions, in order, as fenced scripts in one round trip (see
    /// ``StepWrites`` for the order); a test's armed failpoint fires between two of them.
    private func execute(_ actions: [Action], status: [String: BackendStatus]? = nil, appliedRequest: Bool = false,
                         events: [ClusterEvent] = []) async throws {
        let now = wallClockNow()
        let writes = StepWrites(actions, status: status, appliedRequest: appliedRequest,
                                events: events.map { EventEntry(epoch: scope.epoch, controller: scope.controllerID, at: now, event: $0) },
                                epoch: scope.epoch, keys: keys)
        var calls = writes.calls
        if !failpoints.plan.isEmpty, let (through, point, after) = writes.split(where: { failpoints.isArmed($0.rawValue) }) {
            try await scope.writeAll(through)
            try failpoints.hit(point.rawValue)
            calls = after
        }
        if replicaAcknowledgement.required > 0 {
            let (record, act) = ReplicaAcknowledgement.split(calls)
            if act.isEmpty {
                try await scope.writeAll(record)
            } else {
                try replicaAcknowledgement.check(try await scope.writeAll(record, then: replicaAcknowledgement.command).last)
                try await scope.writeAll(act)
            }
        } else {
            try await scope.writeAll(calls)
        }
        memory.checkpointSeen(calls.contains { $0.name == "writeCheckpoint" })
        DecisionLog.log(actions, now: now, logger: logger)
    }
}
