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
    /// What the last full read saw of the `nodes` set: when each node's lease runs out (ms),
    /// and which still have a record (for ``GoneNodes``); nil after an incremental read.
    var nodeSightings: (lastRegistered: [String: Int64], withRecord: Set<String>)?
    /// Every node's record and lease, as of the last observation.
    var leases = NodeLeases()
    /// Ready records as last read: an unchanged one is not decoded again.
    var readyRecords = ReadyRecordCache()
    /// When the next observation reads everything rather than what changed.
    var fullReads = FullReadSchedule()
    /// Inert unless a test armed one (see ``ControllerFailpoint``).
    let failpoints: Failpoints
    let metrics: ControllerMetrics
    /// Whether steps wait for Redis replicas before acting (decided again at every load).
    var replicaAcknowledgement = ReplicaAcknowledgement(configured: 0, timeout: .zero)
    /// Whether this controller process ever saw the checkpoint (across its terms).
    var memory = ClusterMemory()
    /// What the stored checkpoint holds, part by part: a step's checkpoint writes only what
    /// it changed. Set at every load (a failed step reloads, so it never describes a write
    /// that may not have landed).
    var checkpoints = CheckpointLedger()
    /// How routing views go out: the first after every load whole, then as deltas.
    var routing = RoutingPublisher()
    /// The routers' load reports over each autoscaled backend's look-back period; empty at
    /// the start of a term (see ``LoadWindow``).
    var loadWindow = LoadWindow()
    /// Whether the last step exported autoscaling series (so the next removes those that went).
    var reportsAutoscaling = false
    /// The term's `LeaderElected` event, until a step wrote it (with that step's events).
    lazy var announcement: ClusterEvent? = .leaderElected(controller: scope.controllerID, epoch: scope.epoch)

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
        fullReads.reset()
        if try await replicaAcknowledgement.decide(client: client) {
            logger.info(replicaAcknowledgement.required > 0 ? "steps wait for Redis replicas to hold their checkpoint before acting"
                                                            : "Redis has no replica: steps act without waiting for one",
                        metadata: ["replicas": "\(replicaAcknowledgement.required)", "timeoutMs": "\(replicaAcknowledgement.timeout.wholeMilliseconds)"])
        }
        checkpoints = CheckpointLedger()
        routing = RoutingPublisher()
        guard let stored = try await readCheckpoint() else {
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
            (state, checkpoints) = try Checkpoint.load(stored)
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
        try await execute(Reconciler.recoveryActions(for: state, pendingUserConfigs: checkpoints.pendingUserConfigs) + orphans.map { .forget($0) },
                          status: status)
        statusLedger.wrote(status)
        return true
    }

    /// The stored checkpoint, header and parts read in one transaction; nil when there is none.
    private func readCheckpoint() async throws -> Checkpoint.Stored? {
        let results = try await client.transaction([RedisCommand("GET", keys.checkpoint), RedisCommand("HGETALL", keys.checkpointParts)])
        guard let header = results[0].bytes else { return nil }
        return Checkpoint.Stored(header: header, parts: results[1].fields)
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
        let announced = announcement.map { [$0] } ?? []
        try await execute(actions, status: changedStatus,
                          appliedRequest: next.lastAppliedRequest != state.lastAppliedRequest,
                          events: announced + (actions.isEmpty ? [] : ClusterEvent.between(state, next, actions: actions)))
        announcement = nil
        let gone = nodeSightings.map { GoneNodes.prunable(listed: $0.lastRegistered, withRecord: $0.withRecord,
                                                          occupied: next.occupiedNodes, now: observations.now) } ?? []
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
                                                    listed: Set(leases.sightings.keys)), to: logger)
        }
        if next.requestsApplied > state.requestsApplied { metrics.requestsApplied.increment(by: next.requestsApplied - state.requestsApplied) }
        if !actions.isEmpty || statusLedger.written == nil { metrics.record(next) }
        if !observations.loads.isEmpty || reportsAutoscaling {
            var autoscaled: [String: (desired: Int, load: Double?)] = [:]
            for backend in next.backends where !backend.deleting {
                if let decided = backend.autoscaling { autoscaled[backend.tag] = (decided.desired, observations.loads[backend.tag]?.average) }
            }
            metrics.autoscaled(autoscaled)
            reportsAutoscaling = !autoscaled.isEmpty
        }
        state = next
        statusLedger.wrote(status)
        metrics.reconcileDuration.record(duration: ContinuousClock.now - started)
        if changedStatus != nil {
            for (tag, backendStatus) in status.sorted(by: { $0.key < $1.key }) {
                logger.info("\(tag): \(backendStatus.kind.rawValue), \(backendStatus.reason)", metadata: ["backend": "\(tag)"])
            }
        }
    }

    /// Observes what changed since the last step (see ``ObservedChanges``): one round trip
    /// when nothing did, two when something did; or, when a full read is due
    /// (``FullReadSchedule``), every node and placed replica.
    private mutating func observe(randomSeed: UInt64) async throws -> Observations {
        let now = ContinuousClock.now
        let full = fullReads.isDue(now: now, adoption: adoption)
        // Exclusive start after the last applied request ("(<id>"), or the stream's beginning.
        let start = state.lastAppliedRequest.map { "(" + $0.description } ?? "-"
        var first = [RedisCommand("XRANGE", keys.requests, start, "+", "COUNT", 100), RedisCommand("GET", keys.requestAttempt),
                     RedisCommand("HGETALL", keys.cordons),
                     scope.command(.takeChanges(count: Self.changesPerStep, since: full ? nil : leases.redisNow, keys: keys))]
        if full { first.append(RedisCommand("ZRANGE", keys.nodes, 0, -1, "WITHSCORES")) }
        // Autoscaled backends: the routers' load reports, in the same round trip.
        var lookBack: [String: Double] = [:]
        for backend in state.backends where !backend.deleting {
            if let autoscaling = backend.config.autoscaling { lookBack[backend.tag] = autoscaling.lookBackPeriodS }
        }
        let loadsAt = lookBack.isEmpty ? nil : first.count
        if !lookBack.isEmpty { first.append(scope.command(.readLoads(keys: keys))) }
        let replies = try await client.pipeline(first)
        try scope.check(replies[3])
        if let loadsAt { try scope.check(replies[loadsAt]) }
        try throwRefusals(first, replies)
        guard let changes = ObservedChanges(replies[3]) else { throw RedisError(.server, "the takeChanges script answered \(replies[3])") }
        let cordons = nodeCordons(replies[2])
        let replicas: [String: ReplicaObservation]
        if full {
            replicas = try await readEverything(listed: replies[4], redisNow: changes.redisNow, now: now)
            fullReads.read(at: now, adoption: adoption)
        } else {
            replicas = try await readChanged(changes, now: now)
            nodeSightings = nil
        }
        let nodes = leases.nodeInfos(cordons: cordons, adoption: adoption, now: now)
        let read = requests(replies[0])
        let admitted = try await admit(read.requests, refused: read.refused, record: replies[1])
        let wallNow = wallClockNow()
        if let loadsAt {
            loadWindow.record(Self.loadTotals(replies[loadsAt]), lookBack: lookBack, at: wallNow)
        }
        return Observations(now: wallNow, requests: admitted.requests, refusedRequests: admitted.refused,
                            nodes: nodes, replicas: replicas, randomSeed: randomSeed, loads: loadWindow.loads(lookBack, at: wallNow))
    }

    /// `{backend, total, …}` from ``FencedCall/readLoads(keys:)``; what does not parse counts 0.
    static func loadTotals(_ reply: RedisReply) -> [String: Double] {
        let parts = reply.array ?? []
        var totals: [String: Double] = [:]
        for index in stride(from: 0, to: parts.count - 1, by: 2) {
            guard let backend = parts[index].string, let total = parts[index + 1].string.flatMap(Double.init), total.isFinite, total >= 0 else { continue }
            totals[backend] = total
        }
        return totals
    }

    /// At most this many changed replicas (and nodes) are taken per step; the rest wait for the next.
    static let changesPerStep = 10_000

    /// A full read (one more round trip): every listed node's record, and every placed
    /// replica's ready, drained and exit keys.
    private mutating func readEverything(listed reply: RedisReply, redisNow: Int64, now: ContinuousClock.Instant) async throws -> [String: ReplicaObservation] {
        // `ZRANGE … WITHSCORES`: id, then when its lease runs out (ms).
        var deadlines: [String: Int64] = [:]
        let listed = reply.array ?? []
        for index in stride(from: 0, to: listed.count - 1, by: 2) {
            if let id = listed[index].string { deadlines[id] = listed[index + 1].string.flatMap(Double.init).map { Int64($0) } ?? .max }
        }
        let nodeIDs = deadlines.keys.sorted()
        let placed = state.replicaTags(placedIn: [.starting, .running, .shouldStop, .stopping])
        var commands: [RedisCommand] = []
        if !nodeIDs.isEmpty { commands.append(RedisCommand("MGET", arguments: nodeIDs.map(keys.node))) }
        if !placed.isEmpty { commands.append(RedisCommand("MGET", arguments: placed.flatMap { [keys.ready($0), keys.drained($0), keys.exit($0)] })) }
        let replies = try await readAll(commands)
        var sightings: [String: NodeLeases.Sighting] = [:]
        var withRecord = Set<String>()
        if !nodeIDs.isEmpty {
            for (id, record) in zip(nodeIDs, replies[0].array ?? []) {
                if record.bytes != nil { withRecord.insert(id) }
                sightings[id] = sighting(id, record: record, deadline: deadlines[id])
            }
        }
        leases.replaceAll(sightings, redisNow: redisNow)
        nodeSightings = (deadlines, withRecord)
        readyRecords.beginFullRead()
        defer { readyRecords.endFullRead() }
        return placed.isEmpty ? [:] : replicaObservations(placed, replies[replies.count - 1], now: now)
    }

    /// An incremental read (one more round trip, none when nothing changed): the records and
    /// leases of the nodes changed or lapsed, the keys of the replicas changed.
    private mutating func readChanged(_ changes: ObservedChanges, now: ContinuousClock.Instant) async throws -> [String: ReplicaObservation] {
        let nodeIDs = changes.touchedNodes
        let tags = Array(Set(changes.replicas)).sorted()
        var commands: [RedisCommand] = []
        if !nodeIDs.isEmpty {
            commands.append(RedisCommand("MGET", arguments: nodeIDs.map(keys.node)))
            commands.append(RedisCommand("ZMSCORE", arguments: [keys.nodes] + nodeIDs))
        }
        if !tags.isEmpty { commands.append(RedisCommand("MGET", arguments: tags.flatMap { [keys.ready($0), keys.drained($0), keys.exit($0)] })) }
        let replies = try await readAll(commands)
        var updated: [String: NodeLeases.Sighting] = [:]
        if !nodeIDs.isEmpty {
            for (index, (id, record)) in zip(nodeIDs, replies[0].array ?? []).enumerated() {
                let scores = replies[1].array ?? []
                let score = index < scores.count ? scores[index].string.flatMap(Double.init).map { Int64($0) } : nil
                updated[id] = sighting(id, record: record, deadline: score)
            }
        }
        leases.update(updated, redisNow: changes.redisNow)
        return tags.isEmpty ? [:] : replicaObservations(tags, replies[replies.count - 1], now: now)
    }

    /// Sends `commands` in one round trip (none when empty); throws on any refusal.
    private func readAll(_ commands: [RedisCommand]) async throws -> [RedisReply] {
        guard !commands.isEmpty else { return [] }
        let replies = try await client.pipeline(commands)
        try throwRefusals(commands, replies)
        return replies
    }

    /// Throws the first refusal among an observation's replies.
    private func throwRefusals(_ commands: [RedisCommand], _ replies: [RedisReply]) throws {
        for (command, reply) in zip(commands, replies) {
            if let message = reply.errorMessage { throw RedisError(.server, "Redis refused \(command.name) while observing: \(message)") }
        }
    }

    /// A node as its record (`GET` reply) and lease say.
    private mutating func sighting(_ id: String, record reply: RedisReply, deadline: Int64?) -> NodeLeases.Sighting {
        guard let bytes = reply.bytes else { return NodeLeases.Sighting(deadline: deadline) }
        guard let record = readable(NodeRecord.self, bytes, key: keys.node(id)) else {
            return NodeLeases.Sighting(unreadable: true, deadline: deadline)
        }
        return NodeLeases.Sighting(record: record, deadline: deadline)
    }

    /// What `tags`' keys (an `MGET` of ready, drained and exit for each) say, through the
    /// adoption grace's filter.
    private mutating func replicaObservations(_ tags: [String], _ reply: RedisReply, now: ContinuousClock.Instant) -> [String: ReplicaObservation] {
        guard let values = reply.array, values.count == tags.count * 3 else { return [:] }
        var replicas: [String: ReplicaObservation] = [:]
        var cache = readyRecords
        defer { readyRecords = cache }
        for (index, tag) in tags.enumerated() {
            var observation = ReplicaObservation()
            var unreadable = false
            if let bytes = values[index * 3].bytes {
                if let endpoint = cache.endpoint(tag, bytes, decode: { bytes in
                    readable(ReadyRecord.self, bytes, key: keys.ready(tag)).map { ReplicaEndpoint(address: $0.address, pid: $0.pid) }
                }) {
                    observation.endpoint = endpoint
                } else {
                    unreadable = true
                }
            } else {
                cache.forget(tag)
            }
            observation.drained = !values[index * 3 + 1].isNull
            if let bytes = values[index * 3 + 2].bytes {
                // An exit record that cannot be read still says the process exited.
                observation.exit = readable(ExitRecord.self, bytes, key: keys.exit(tag))?.reason ?? "exited (its record cannot be read)"
            }
            // A ready key that exists but cannot be read is a record in a format this leader
            // does not know: no news, never a lost replica.
            if unreadable, observation.exit == nil, !observation.drained { continue }
            replicas[tag] = adoption.filter(observation, tag: tag, now: now)
        }
        return replicas
    }

    /// The requests of an `XRANGE` reply, and those that cannot be read (refused).
    private func requests(_ reply: RedisReply) -> (requests: [Request], refused: [RefusedRequest]) {
        var requests: [Request] = []
        var refused: [RefusedRequest] = []
        for entry in reply.streamEntries {
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
        return (requests, refused)
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
    private mutating func execute(_ actions: [Action], status: [String: BackendStatus]? = nil, appliedRequest: Bool = false,
                         events: [ClusterEvent] = []) async throws {
        let now = wallClockNow()
        let writes = StepWrites(actions, status: status, appliedRequest: appliedRequest,
                                events: events.map { EventEntry(epoch: scope.epoch, controller: scope.controllerID, at: now, event: $0) },
                                epoch: scope.epoch, keys: keys, checkpoints: &checkpoints, routing: &routing)
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
