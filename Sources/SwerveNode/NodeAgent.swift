import Dispatch
import Foundation
public import Logging
import SwerveCore
public import SwerveErrors
import SwerveProtocol
import SwerveRedis
import SwerveSystem

/// `swerve node`: registers the host with a heartbeat, runs exactly the workers its
/// assignments name, kills those it must, records every exit, and restarts nothing by itself.
/// See `docs/PROTOCOL.md` for the keys it reads and writes.
///
/// On SIGTERM or SIGINT it drains the node: its record says `draining`, so the leader places
/// nothing more here, starts replacements elsewhere, takes these replicas out of routing and
/// drains them; the agent returns once its workers exited (killing whatever still runs after
/// `shutdownTimeout`), and deregisters. A second agent started with the id of a live one
/// refuses to start (see ``NodeAgentError``).
public enum NodeAgent {
    enum Event: Sendable {
        case tick
        case notified
        /// The notification channel was (re)subscribed: Redis may have restarted or failed over.
        case resubscribed
        case terminate
        /// A child exited (``ChildExitWatcher``): reap it now.
        case childExited
    }

    public static func run(_ configuration: NodeConfiguration, logger baseLogger: Logger) async throws {
        let logger = {
            var logger = baseLogger
            logger[metadataKey: "node"] = "\(configuration.id)"
            return logger
        }()
        let client = RedisClient(configuration: configuration.redis, logger: logger)
        defer { client.close() }
        let (events, continuation) = AsyncStream.makeStream(of: Event.self)

        let termination = handleTermination { continuation.yield(.terminate) }
        defer { termination.cancel() }

        var agent = NodeAgentRun(configuration: configuration, client: client, logger: logger)
        agent.childExits = ChildExitWatcher { continuation.yield(.childExited) }
        try await agent.claimNodeID()
        try await agent.register()
        logger.info("registered", metadata: ["address": "\(configuration.address)", "cpu": "\(configuration.resources.cpu)"])

        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: .milliseconds(100))
                    continuation.yield(.tick)
                }
            }
            group.addTask {
                let subscriber = RedisSubscriber(configuration: configuration.redis, logger: logger)
                try? await subscriber.subscribe(to: [configuration.keys.nodeNotify(configuration.id)]) { subscription in
                    var subscribedBefore = false
                    for await event in subscription {
                        switch event {
                        case .subscribed:
                            continuation.yield(subscribedBefore ? .resubscribed : .notified)
                            subscribedBefore = true
                        case .mayHaveMissedMessages, .message: continuation.yield(.notified)
                        case .disconnected: break
                        }
                    }
                }
            }
            for await event in events {
                if await agent.handle(event) { break }
            }
            group.cancelAll()
        }
        await agent.deregister()
        logger.info("stopped")
    }
}

/// Why a node agent cannot run.
public typealias NodeAgentError = DomainError<NodeAgentErrorDomain>

/// The codes of ``NodeAgentError``.
public enum NodeAgentErrorDomain {}

extension ErrorCode where Domain == NodeAgentErrorDomain {
    /// A live agent holds the node id.
    public static let nodeIDTaken = Self("nodeIDTaken")
}

/// The agent's state between events.
struct NodeAgentRun {
    let configuration: NodeConfiguration
    let client: RedisClient
    let logger: Logger
    var running: [String: RunningWorker] = [:]
    /// Tags this agent ever started: never started again.
    var ranBefore: Set<String> = []
    /// Malformed assignments already reported.
    var reported: Set<String> = []
    var view = NodeView()
    /// The assignments' version the view was read at.
    var viewVersion: Int64?
    /// What the next heartbeat sends (see ``NodeHeartbeat``).
    var heartbeat: NodeHeartbeat
    /// Set while heartbeats fail (so an outage is logged once).
    var heartbeatFailing = false
    var lastPoll = ContinuousClock.now
    /// The last read of the assignments failed (said once per outage; retried at every tick).
    var readFailing = false
    /// Set on SIGTERM: when (Unix ms) workers still running are killed.
    var shutdownDeadline: Timestamp?
    /// When this agent started (Unix ms): its record says so on every re-registration.
    let startedAt = wallClockNow()
    /// Set once the agent asked its workers to drain themselves (no leader was there to).
    var workersAskedToDrain = false
    /// Reports a child's exit the moment it happens (nil: exits are found at each tick only).
    var childExits: ChildExitWatcher?
    /// When the agent first saw each worker's drain request (for the drain duration metric).
    var drainSeen: [String: ContinuousClock.Instant] = [:]
    /// This process's claim on the node id.
    let owner = NodeOwnerDocument(token: UUID().uuidString, host: ProcessInfo.processInfo.hostName, pid: getpid(), startedAt: wallClockNow())

    var keys: ClusterKeys { configuration.keys }
    var id: String { configuration.id }

    init(configuration: NodeConfiguration, client: RedisClient, logger: Logger) {
        self.configuration = configuration
        self.client = client
        self.logger = logger
        heartbeat = NodeHeartbeat(ttl: configuration.nodeTTL)
    }

    /// How long the claim and the record outlive the agent's last renewal.
    var recordTTL: Duration { max(ClusterKeys.nodeRecordTTL, configuration.nodeTTL * 3) }

    /// Claims the node id (`SET NX` of the owner key). A claim of this host's previous agent,
    /// now dead, is taken over at once; so is one whose node lease (its score in `nodes`) ran
    /// out — its agent stopped heartbeating. Otherwise this waits a node TTL for the lease to
    /// run out; a claim whose lease is still renewed after it belongs to a live agent.
    /// - Throws: ``NodeAgentError`` `.nodeIDTaken`, naming the holder.
    func claimNodeID() async throws {
        let claim = DocumentCodec.encode(owner)
        let patience = ContinuousClock.now + configuration.nodeTTL + .seconds(1)
        var waited = false
        while true {
            let reply = try await client.send(RedisCommand("SET", keys.nodeOwner(id), claim, "NX", "PX", recordTTL.wholeMilliseconds))
            if reply == .simpleString("OK") { return }
            let replies = try await client.pipeline([RedisCommand("GET", keys.nodeOwner(id)), RedisCommand("ZSCORE", keys.nodes, id),
                                                     RedisCommand("TIME")])
            let held = replies[0].bytes
            let holder = held.flatMap { try? DocumentCodec.decode(NodeOwnerDocument.self, from: $0, source: keys.nodeOwner(id)) }
            let leaseRanOut = (replies[1].string.flatMap(Double.init) ?? 0) < Double(replies[2].timeMilliseconds ?? 0)
            if let held, let holder, isDeadPredecessor(holder) || leaseRanOut {
                // This host's previous agent died (a crash and a supervisor's restart), or the
                // holder stopped heartbeating: take its claim over now.
                let taken = try await client.run(Self.takeOverClaim, keys: [keys.nodeOwner(id)],
                                                 arguments: [held, claim, recordTTL.wholeMilliseconds])
                if taken.integer == 1 {
                    logger.info(leaseRanOut ? "took over the node id from an agent whose lease ran out" : "took over the node id from this host's previous agent",
                                metadata: ["previous pid": "\(holder.pid)", "previous host": "\(holder.host)"])
                    return
                }
                continue
            }
            if ContinuousClock.now >= patience {
                let who = holder.map { "the agent with pid \($0.pid) on host \($0.host), started at \($0.startedAt)" } ?? "another agent"
                throw NodeAgentError(.nodeIDTaken, "node id \"\(id)\" is held by \(who) (\(keys.nodeOwner(id))); stop it first, or give this agent another --id")
            }
            if !waited {
                logger.warning("node id held; waiting for the claim to expire in case its agent died", metadata: ["holder pid": "\(holder?.pid ?? 0)"])
                waited = true
            }
            try await Task.sleep(for: .milliseconds(200))
        }
    }

    /// Whether `holder` was an agent on this host that no longer runs: same host name, and its
    /// pid is gone — or is this very process (a container restarted with the same name and
    /// pid namespace numbering).
    private func isDeadPredecessor(_ holder: NodeOwnerDocument) -> Bool {
        guard holder.host == owner.host, holder.token != owner.token else { return false }
        if holder.pid == getpid() { return true }
        return kill(holder.pid, 0) == -1 && errno == ESRCH
    }

    /// Replaces a claim only if it is still the one read (`ARGV[1]`).
    private static let takeOverClaim = RedisScript("""
        if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) return 1 end
        return 0
        """)

    /// Sends the heartbeat due now (see ``NodeHeartbeat``): a full registration, a renewal of
    /// the record and the claim, or the lease alone.
    mutating func sendHeartbeat() async throws(RedisError) {
        let now = ContinuousClock.now
        let kind = heartbeat.kind(now: now)
        heartbeat.attempted(at: now)
        do {
            switch kind {
            case .register:
                try await register()
            case .renew:
                let replies = try await client.pipeline(NodeLeaseCommands.renew(keys: keys, id: id, owner: owner, recordTTL: recordTTL,
                                                                                deadline: heartbeat.leaseDeadline(wallClock: wallClockMilliseconds())))
                _ = try replies[2].throwingServerError(for: "ZADD")
                reportLostClaim(replies[0])
                // PEXPIRE 0: the record was gone; ZADD 1: the lease was.
                if heartbeat.succeeded(.renew, at: now, leaseWasThere: replies[2].integer != 1, recordWasThere: replies[1].integer != 0) {
                    await redisLostKeys(rereadAssignments: true)
                }
            case .beat:
                let reply = try await client.send(NodeLeaseCommands.beat(keys: keys, id: id, deadline: heartbeat.leaseDeadline(wallClock: wallClockMilliseconds())))
                _ = try reply.throwingServerError(for: "ZADD")
                if heartbeat.succeeded(.beat, at: now, leaseWasThere: reply.integer != 1) { await redisLostKeys(rereadAssignments: true) }
            }
        } catch {
            heartbeat.registerNext()
            throw error
        }
    }

    /// Writes the node record and its lease, renews the claim on the id, marks the node
    /// changed and wakes the leader: one script, so the lease is written on Redis's clock.
    mutating func register() async throws(RedisError) {
        let now = ContinuousClock.now
        let record = NodeRecord(id: id, address: configuration.address, resources: configuration.resources, pid: getpid(),
                                startedAt: startedAt, draining: shutdownDeadline != nil)
        let wake = WakeUp(event: shutdownDeadline != nil ? .nodeChanged : .nodeJoined, subject: id)
        let reply = try await client.send(NodeLeaseCommands.register(keys: keys, owner: owner, record: record, recordTTL: recordTTL,
                                                                     nodeTTL: configuration.nodeTTL, wake: wake))
        // Refused (an ACL without this node's rights, say): the leader would never see the node.
        _ = try reply.throwingServerError(for: "EVALSHA (register)")
        let parts = reply.array ?? []
        reportLostClaim(parts.first ?? .null)
        let redisTime = parts.count > 1 ? parts[1].integer : nil
        if heartbeat.succeeded(.register, at: now, redisTimeMs: redisTime, wallClock: wallClockMilliseconds(),
                               leaseWasThere: parts.count < 3 || parts[2].integer != 0) {
            await redisLostKeys(rereadAssignments: true)
        }
    }

    /// The node's lease or record was missing: Redis lost keys (an operator's `FLUSHALL`, a
    /// restart or failover that kept the connections of some). Registers again at the next
    /// heartbeat, re-reads the assignments (when `rereadAssignments`: their version may have
    /// gone back too), and asks every worker to re-check its keys
    /// (``ControlMessage/Event/recheck``): a worker whose ready record is gone writes it again.
    mutating func redisLostKeys(rereadAssignments: Bool) async {
        heartbeat.registerNext()
        if rereadAssignments { await readView(force: true) }
        guard !running.isEmpty else { return }
        logger.warning("Redis lost this node's lease or record: registering again and asking the workers to re-check their keys",
                       metadata: ["workers": "\(running.count)"])
        let message = DocumentCodec.encode(ControlMessage(event: .recheck))
        _ = try? await client.pipeline(running.keys.sorted().map { RedisCommand("PUBLISH", keys.control($0), message) })
    }

    private func reportLostClaim(_ reply: RedisReply) {
        if reply.integer == 0 {
            logger.critical("another agent claimed this node id while this one could not renew its claim; both run its workers until one stops",
                            metadata: ["key": "\(keys.nodeOwner(id))"])
        }
    }

    func deregister() async {
        _ = try? await client.pipeline([
            RedisCommand("DEL", keys.node(id)),
            RedisCommand("ZREM", keys.nodes, id),
            Self.releaseClaim.command(keys: [keys.nodeOwner(id)], arguments: [DocumentCodec.encode(owner)]),
            RedisCommand("SADD", keys.changedNodes, id),
            RedisCommand("PUBLISH", keys.wake, DocumentCodec.encode(WakeUp(event: .nodeLeft, subject: id))),
        ])
    }

    /// Deletes the claim if it is still this agent's.
    private static let releaseClaim = RedisScript("""
        if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
        return 0
        """)

    /// Handles one event; true when the agent is done.
    mutating func handle(_ event: NodeAgent.Event) async -> Bool {
        switch event {
        case .terminate:
            guard shutdownDeadline == nil else { return false }
            // The leader moves the replicas away and drains them; this agent waits for its
            // workers to exit, and kills what still runs at the deadline.
            logger.info("draining the node (SIGTERM/SIGINT)", metadata: ["workers": "\(running.count)"])
            shutdownDeadline = wallClockNow().adding(milliseconds: configuration.shutdownTimeout.wholeMilliseconds)
            heartbeat.attempted(at: .now)
            do { try await register() } catch { logger.warning("cannot mark the node draining", metadata: ["error": "\(error.message)"]) }
            await drainWorkersIfNoLeader()
        case .notified:
            await readView(force: true)
        case .childExited:
            break  // reaped below
        case .resubscribed:
            // Redis may have restarted or failed over, losing the record or the lease.
            heartbeat.registerNext()
            await readView(force: true)
        case .tick:
            let now = ContinuousClock.now
            if heartbeat.isDue(now: now) {
                // Logged once per outage: a registration owed is retried every 200 ms.
                do {
                    try await sendHeartbeat()
                    if heartbeatFailing { logger.info("heartbeat restored") }
                    heartbeatFailing = false
                } catch {
                    if !heartbeatFailing { logger.warning("cannot send the heartbeat; retrying", metadata: ["error": "\(error.message)"]) }
                    heartbeatFailing = true
                }
            }
            if shutdownDeadline != nil { await drainWorkersIfNoLeader() }
            if now - lastPoll >= configuration.pollInterval { await readView(force: false) }
        }
        await reapExits()
        if shutdownDeadline != nil && running.isEmpty { return true }
        await converge()
        return false
    }

    /// While the node drains and no controller leads (none runs, or all stopped first), nobody
    /// will drain the workers: they are asked to drain themselves (SIGTERM), as a worker does
    /// when its leader asks. Routers keep them until they stop answering.
    mutating func drainWorkersIfNoLeader() async {
        guard !workersAskedToDrain, !running.isEmpty else { return }
        guard let reply = try? await client.send("EXISTS", keys.leader), reply.integer == 0 else { return }
        logger.info("no controller leads: asking the workers to drain themselves", metadata: ["workers": "\(running.count)"])
        for worker in running.values { WorkerProcesses.signalGroup(worker.pid, SIGTERM) }
        workersAskedToDrain = true
    }

    /// Re-reads the assignments (when their version changed, or `force`) and the drain requests.
    /// Re-reads the drain requests and the assignments version in one round trip, and the
    /// assignments themselves (a second) only when their version changed or `force` (plus the
    /// drains of replicas assigned since, when there are any).
    mutating func readView(force: Bool) async {
        lastPoll = .now
        do {
            let known = Array(Set(view.assigned.keys).union(running.keys)).sorted()
            var commands = [RedisCommand("GET", keys.assignmentsVersion(id))]
            if !known.isEmpty { commands.append(RedisCommand("MGET", arguments: known.map(keys.drain))) }
            let replies = try await client.pipeline(commands)
            let version = replies[0].integer
            var fresh = NodeView(assigned: view.assigned, malformed: view.malformed, keptAfterLoss: view.keptAfterLoss)
            if NodeConvergence.storeLostWrites(lastRead: viewVersion, read: version) {
                let unlisted = Set(running.keys).subtracting(fresh.keptAfterLoss)
                fresh.keptAfterLoss.formUnion(running.keys)
                logger.critical("the assignments' version went back: Redis lost writes (restored from an older file, restarted empty, or failed over to a replica that lacked them); keeping every running worker until a leader assigns, drains or force-kills it",
                                metadata: ["version": "\(version.map(String.init) ?? "none")", "was": "\(viewVersion ?? 0)", "kept": "\(unlisted.sorted().joined(separator: ","))"])
                await redisLostKeys(rereadAssignments: false)
            }
            if known.count > 0 { fresh.drains = drainRequests(known, replies[1]) }
            if force || version != viewVersion || viewVersion == nil {
                let reply = try await client.send("HGETALL", keys.assignments(id))
                guard reply.array != nil else { return }
                fresh.assigned = [:]
                fresh.malformed = [:]
                for (tag, bytes) in reply.fieldPairs {
                    do {
                        fresh.assigned[tag] = try DocumentCodec.decode(AssignmentDocument.self, from: bytes, source: "\(keys.assignments(id)) field \(tag)")
                    } catch {
                        fresh.malformed[tag] = error.message
                    }
                }
                viewVersion = version
                // Replicas assigned since: their drains too (rarely any), before anything starts.
                let new = fresh.assigned.keys.filter { !known.contains($0) }.sorted()
                if !new.isEmpty {
                    let reply = try await client.send(RedisCommand("MGET", arguments: new.map(keys.drain)))
                    fresh.drains.merge(drainRequests(new, reply)) { $1 }
                }
            }
            // A kept worker its assignment lists again is judged like any other from then on.
            fresh.keptAfterLoss.subtract(fresh.assigned.keys)
            view = fresh
            for tag in view.drains.keys where running[tag] != nil && drainSeen[tag] == nil { drainSeen[tag] = .now }
            if readFailing { logger.info("assignments read again") }
            readFailing = false
        } catch {
            // Retried at the next tick, not after a whole poll interval: a re-read owed after
            // Redis came back (its subscription may reconnect before this connection does)
            // would otherwise wait seconds to learn what Redis lost.
            lastPoll = .now - configuration.pollInterval
            if !readFailing { logger.warning("cannot read assignments; retrying at every tick", metadata: ["error": "\(error.message)"]) }
            readFailing = true
        }
    }

    /// The drain requests an `MGET` of `tags`' drain keys answered.
    private func drainRequests(_ tags: [String], _ reply: RedisReply) -> [String: DrainRequest] {
        var drains: [String: DrainRequest] = [:]
        for (tag, value) in zip(tags, reply.array ?? []) {
            guard let bytes = value.bytes else { continue }
            drains[tag] = try? DocumentCodec.decode(DrainRequest.self, from: bytes, source: keys.drain(tag))
        }
        return drains
    }

    mutating func converge() async {
        let actions = NodeConvergence.actions(view: view, running: running, ranBefore: ranBefore, reported: reported,
                                              now: wallClockNow(), shutdownDeadline: shutdownDeadline)
        for action in actions {
            switch action {
            case .start(let assignment):
                await start(assignment)
            case .kill(let tag, let pid, let reason):
                logger.info("killing worker", metadata: ["replica": "\(tag)", "reason": "\(reason)"])
                WorkerProcesses.signalGroup(pid, SIGKILL)
                running[tag]?.killSent = true
            case .reportMalformed(let tag, let reason):
                logger.error("ignoring a malformed assignment", metadata: ["replica": "\(tag)", "error": "\(reason)"])
                reported.insert(tag)
            }
        }
    }

    mutating func start(_ assignment: AssignmentDocument) async {
        if let refusal = configuration.allowedCommands.refusal(of: assignment.replicaConfig.workload, agentPath: configuration.environment["PATH"],
                                                              find: findExecutable) {
            // Recorded like a start that failed (code 126, as a shell reports a command it may
            // not run), with the reason, so the leader replaces the replica elsewhere and its
            // events say why.
            ranBefore.insert(assignment.tag)
            configuration.metrics.started("refused")
            logger.error("refusing a command replica", metadata: ["replica": "\(assignment.tag)", "reason": "\(refusal)"])
            await recordNotStarted(assignment.tag, code: 126, message: "refused by node \(id): \(refusal)")
            return
        }
        let launch = WorkerLaunchEnvironment(redisURL: configuration.redisURL, keys: keys, nodeID: id, nodeAddress: configuration.address,
                                             replicaTag: assignment.tag, agentPID: getpid(), heartbeatTTL: configuration.workerHeartbeatTTL)
        let environment = configuration.environment.merging(launch.environment()) { $1 }
        ranBefore.insert(assignment.tag)
        do {
            let command = configuration.workerCommand
            let pid = try WorkerProcesses.spawn(executable: command[0], arguments: Array(command.dropFirst()), environment: environment)
            running[assignment.tag] = RunningWorker(tag: assignment.tag, pid: pid)
            configuration.metrics.started("started")
            configuration.metrics.running(running.count)
            childExits?.lookAgain()
            logger.info("started worker", metadata: ["replica": "\(assignment.tag)", "pid": "\(pid)"])
        } catch {
            // Recorded like an exit (code 127, as a shell reports a command it cannot run), so the
            // leader replaces the replica now instead of waiting out its start timeout.
            configuration.metrics.started("failed")
            logger.error("cannot start worker", metadata: ["replica": "\(assignment.tag)", "error": "\(error.message)"])
            await recordNotStarted(assignment.tag, code: 127, message: nil)
        }
    }

    /// Writes the exit record of a worker that was never started (pid 0), and wakes the leader.
    private func recordNotStarted(_ tag: String, code: Int32, message: String?) async {
        let record = ExitRecord(tag: tag, node: id, pid: 0, code: code, signal: nil, exitedAt: wallClockNow(), message: message)
        await writeExitRecord(record)
    }

    /// Writes `record`, retracts the replica's ready record (the node vouched for it), marks
    /// the replica changed and wakes the leader. Not retried: without it the leader learns of
    /// the exit only at its next full re-read of every replica — hence the warning.
    private func writeExitRecord(_ record: ExitRecord) async {
        do {
            _ = try await client.pipeline(NodeLeaseCommands.recordExit(record, keys: keys))[0].throwingServerError(for: "SET")
        } catch {
            logger.warning("cannot record the worker's exit; the leader learns of it at its next full re-read",
                           metadata: ["replica": "\(record.tag)", "error": "\(error.message)"])
        }
    }

    /// Records every exited worker (the exit key, and a wake-up for the leader).
    mutating func reapExits() async {
        let exits = WorkerProcesses.reap()
        if !exits.isEmpty { childExits?.lookAgain() }
        for exit in exits {
            guard let worker = running.values.first(where: { $0.pid == exit.pid }) else { continue }
            running[worker.tag] = nil
            view.keptAfterLoss.remove(worker.tag)
            configuration.metrics.running(running.count)
            configuration.metrics.exited(code: exit.code, signal: exit.signal, killedByAgent: worker.killSent)
            if let seen = drainSeen.removeValue(forKey: worker.tag) { configuration.metrics.drained(after: .now - seen) }
            // Whatever the worker started (its command's program) goes with it: a worker that
            // died alone (SIGKILL, OOM) must not leave a program behind holding its port.
            WorkerProcesses.signalGroup(worker.pid, SIGKILL)
            let record = ExitRecord(tag: worker.tag, node: id, pid: exit.pid, code: exit.code, signal: exit.signal, exitedAt: wallClockNow())
            logger.info("worker exited", metadata: ["replica": "\(worker.tag)", "reason": "\(record.reason)"])
            await writeExitRecord(record)
        }
    }

}
