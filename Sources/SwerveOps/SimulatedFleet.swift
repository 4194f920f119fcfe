import Foundation
import Logging
import SwerveCore
import SwerveErrors
import SwerveNode
import SwerveProtocol
import SwerveRedis
import SwerveSystem
import Synchronization

/// Thousands of node agents and their workers in one process, speaking the node/worker protocol
/// of `docs/PROTOCOL.md` against a real Redis and real controllers: registration and node
/// leases (``NodeLeaseCommands``, as `swerve node` sends them), assignments read on their
/// notify channel, workers that report ready at once or after a delay, drains, exits — and
/// failures on demand. What it does not simulate: HTTP. Replicas advertise addresses nobody
/// serves; the simulated routers only follow the snapshots.
///
/// Batched where a fleet of separate processes would not be: each 100 ms tick sends one
/// pipeline of the beats due (a tenth of the nodes), and the ready and exit records of that
/// tick with one wake-up. What Redis and the leader see per node and per replica is the same.
/// Heartbeats run on a task and connection of their own (``SimulatedHeartbeats``), as each
/// agent's do: a burst of assignments to converge must not make the whole fleet miss its
/// leases.
final class SimulatedFleet: Sendable {
    struct Settings: Sendable {
        var redis: RedisConfiguration
        var keys: ClusterKeys
        var nodes: Int
        /// Node ids are `PREFIX-1`…`PREFIX-N`.
        var prefix = "sim"
        var cpu: Double = 64
        var nodeTTL = Duration.seconds(3)
        /// How long a started worker takes to report ready.
        var readyDelay = Duration.zero
        /// Simulated routers following the routing snapshot.
        var routers = 1
    }

    enum Event: Sendable {
        case tick
        case notified(String)
        case resubscribed
        case command(String)
        case stop
    }

    let settings: Settings
    let logger: Logger

    init(settings: Settings, logger: Logger) {
        self.settings = settings
        self.logger = logger
    }

    /// Runs until `events` yields `.stop` (or ends). Prints `registered N` once every node
    /// registered, and one line per command.
    func run(events: AsyncStream<Event>, continuation: AsyncStream<Event>.Continuation) async throws {
        let client = RedisClient(configuration: settings.redis, logger: logger)
        defer { client.close() }
        let shared = SharedFleetState()
        var state = FleetState(settings: settings, shared: shared)
        try await state.registerAll(client)
        say("registered \(settings.nodes)")

        let keys = settings.keys
        let redis = settings.redis
        let logger = logger
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: .milliseconds(100))
                    continuation.yield(.tick)
                }
            }
            group.addTask {
                let subscriber = RedisSubscriber(configuration: redis, logger: logger)
                try? await subscriber.subscribe(to: [], patterns: [keys.nodeNotify("*")]) { subscription in
                    for await event in subscription {
                        switch event {
                        case .subscribed, .mayHaveMissedMessages: continuation.yield(.resubscribed)
                        case .message(let message):
                            let id = message.channel.dropFirst(keys.prefix.count + "node:".count).dropLast(":notify".count)
                            continuation.yield(.notified(String(id)))
                        case .disconnected: break
                        }
                    }
                }
            }
            group.addTask { [settings, logger, owner = state.owner, offset = state.clockOffsetMs] in
                await SimulatedHeartbeats(settings: settings, owner: owner, clockOffsetMs: offset, shared: shared, logger: logger).run()
            }
            for index in 0..<settings.routers {
                group.addTask { await SimulatedRouter(index: index, redis: redis, keys: keys, shared: shared, logger: logger).run() }
            }
            for await event in events {
                if case .stop = event { break }
                do {
                    try await state.handle(event, client: client)
                } catch {
                    logger.warning("simulated fleet: \(error)")
                }
            }
            group.cancelAll()
        }
    }
}

/// One simulated worker.
struct SimulatedReplica: Sendable {
    var backend: String
    var version: String
    var port: UInt16
    var pid: Int32
    var ready = false
}

/// One simulated node agent.
struct SimulatedNode: Sendable {
    var id: String
    var replicas: [String: SimulatedReplica] = [:]
    /// Lost on demand: it beats and answers no more.
    var lost = false
    /// Extra time its workers take to report ready.
    var slowness = Duration.zero
}

/// The nodes lost on demand, shared with the heartbeats' task; and how many routing views
/// the simulated routers checked, for `status`.
final class SharedFleetState: Sendable {
    private let positions = Mutex<Set<Int>>([])
    let routerViews = Atomic<Int>(0)
    func lose(_ position: Int) { positions.withLock { _ = $0.insert(position) } }
    var lostNodes: Set<Int> { positions.withLock { $0 } }
}

/// The fleet's heartbeats, as each agent sends them (``NodeLeaseCommands``): every node beats
/// once a third of the TTL, spread over 100 ms ticks, in one pipeline per tick; renews its
/// record and claim every third of their 60 s; and registers in full instead when its last beat
/// is more than half a TTL old (its lease may have run out).
struct SimulatedHeartbeats {
    let settings: SimulatedFleet.Settings
    let owner: NodeOwnerDocument
    let clockOffsetMs: Int64
    let shared: SharedFleetState
    let logger: Logger

    func run() async {
        let client = RedisClient(configuration: settings.redis, logger: logger)
        defer { client.close() }
        let keys = settings.keys
        let ticksPerBeat = max(Int(settings.nodeTTL.wholeMilliseconds / 3 / 100), 1)
        // Encoded once: three JSON documents per node per late tick would cost the simulator
        // more CPU than the fleet it stands for, and make it late again.
        let registrations = (0..<settings.nodes).map { position in
            let id = "\(settings.prefix)-\(position + 1)"
            return NodeLeaseCommands.register(keys: keys, owner: owner, record: FleetState.record(id, settings: settings, owner: owner),
                                              recordTTL: ClusterKeys.nodeRecordTTL, nodeTTL: settings.nodeTTL,
                                              wake: WakeUp(event: .nodeJoined, subject: id))
        }
        var lastSuccess = [ContinuousClock.Instant](repeating: .now, count: ticksPerBeat)
        var lastRenewal = [ContinuousClock.Instant](repeating: .now, count: ticksPerBeat)
        let renewalInterval = ClusterKeys.nodeRecordTTL / 3
        var tick = 0
        while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(100))
            tick += 1
            let bucket = tick % ticksPerBeat
            let now = ContinuousClock.now
            let late = now - lastSuccess[bucket] >= settings.nodeTTL / 2
            let renewing = !late && now - lastRenewal[bucket] >= renewalInterval
            let deadline = wallClockMilliseconds() + clockOffsetMs + settings.nodeTTL.wholeMilliseconds
            let skipped = shared.lostNodes
            var commands: [RedisCommand] = []
            for position in stride(from: bucket, to: settings.nodes, by: ticksPerBeat) where !skipped.contains(position) {
                let id = "\(settings.prefix)-\(position + 1)"
                if late {
                    commands.append(registrations[position])
                } else if renewing {
                    commands += NodeLeaseCommands.renew(keys: keys, id: id, owner: owner, recordTTL: ClusterKeys.nodeRecordTTL, deadline: deadline)
                } else {
                    commands.append(NodeLeaseCommands.beat(keys: keys, id: id, deadline: deadline))
                }
            }
            do {
                for chunk in stride(from: 0, to: commands.count, by: 1000) {
                    _ = try await client.pipeline(Array(commands[chunk..<min(chunk + 1000, commands.count)]))
                }
                lastSuccess[bucket] = now
                if late || renewing { lastRenewal[bucket] = now }
            } catch {
                logger.warning("simulated heartbeats: \(error)")
            }
        }
    }
}

/// The fleet's state between events, and how it reacts (one task owns it).
struct FleetState {
    let settings: SimulatedFleet.Settings
    /// Mirrors each node's `lost` for the heartbeats' task.
    let shared: SharedFleetState
    var nodes: [SimulatedNode]
    var index: [String: Int] = [:]
    var dirty = Set<Int>()
    var clockOffsetMs: Int64 = 0
    var nextPort: UInt16 = 1024
    var nextPID: Int32 = 100_000
    var outbox: [RedisCommand] = []
    /// Workers started and not ready yet: when each reports ready.
    var starting: [(readyAt: ContinuousClock.Instant, position: Int, tag: String)] = []
    var changed: [String] = []
    let owner = NodeOwnerDocument(token: UUID().uuidString, host: "sim", pid: getpid(), startedAt: wallClockNow())

    var keys: ClusterKeys { settings.keys }

    init(settings: SimulatedFleet.Settings, shared: SharedFleetState) {
        self.settings = settings
        self.shared = shared
        nodes = (1...max(settings.nodes, 1)).map { SimulatedNode(id: "\(settings.prefix)-\($0)") }
        for (position, node) in nodes.enumerated() { index[node.id] = position }
    }

    static func record(_ id: String, settings: SimulatedFleet.Settings, owner: NodeOwnerDocument) -> NodeRecord {
        NodeRecord(id: id, address: "127.0.0.1", resources: Resources(cpu: settings.cpu, memoryBytes: 1 << 40), pid: getpid(), startedAt: owner.startedAt)
    }

    mutating func registerAll(_ client: RedisClient) async throws {
        if let redisNow = try await client.send("TIME").timeMilliseconds { clockOffsetMs = redisNow - wallClockMilliseconds() }
        for chunk in stride(from: 0, to: nodes.count, by: 500) {
            let commands = nodes[chunk..<min(chunk + 500, nodes.count)].map {
                NodeLeaseCommands.register(keys: keys, owner: owner, record: Self.record($0.id, settings: settings, owner: owner), recordTTL: ClusterKeys.nodeRecordTTL,
                                           nodeTTL: settings.nodeTTL, wake: WakeUp(event: .nodeJoined, subject: $0.id))
            }
            for reply in try await client.pipeline(commands) { _ = try reply.throwingServerError(for: "EVALSHA (register)") }
        }
    }

    mutating func handle(_ event: SimulatedFleet.Event, client: RedisClient) async throws {
        switch event {
        case .tick:
            if !dirty.isEmpty { try await readAssignments(client) }
            startDueWorkers()
        case .notified(let id):
            if let position = index[id], !nodes[position].lost { dirty.insert(position) }
        case .resubscribed:
            dirty = Set(nodes.indices.filter { !nodes[$0].lost })
        case .command(let line):
            command(line)
        case .stop:
            return
        }
        try await flush(client)
    }

    /// Re-reads the assignments and drain keys of the nodes notified, and converges each: starts
    /// what is new, kills what is gone, drains what is asked.
    mutating func readAssignments(_ client: RedisClient) async throws {
        let positions = dirty.sorted()
        dirty.removeAll()
        for chunk in stride(from: 0, to: positions.count, by: 200) {
            let batch = Array(positions[chunk..<min(chunk + 200, positions.count)])
            let replies = try await client.pipeline(batch.map { RedisCommand("HGETALL", keys.assignments(nodes[$0].id)) })
            var drainReads: [(position: Int, tags: [String])] = []
            for (position, reply) in zip(batch, replies) {
                var assigned: [String: AssignmentDocument] = [:]
                for (tag, bytes) in reply.fieldPairs {
                    assigned[tag] = try? DocumentCodec.decode(AssignmentDocument.self, from: bytes, source: tag)
                }
                for tag in nodes[position].replicas.keys where assigned[tag] == nil { workerExited(position, tag, code: nil, signal: SIGKILL) }
                for (tag, assignment) in assigned where nodes[position].replicas[tag] == nil {
                    start(position, tag, assignment)
                }
                let tags = nodes[position].replicas.keys.sorted()
                if !tags.isEmpty { drainReads.append((position, tags)) }
            }
            guard !drainReads.isEmpty else { continue }
            let drains = try await client.pipeline(drainReads.map { RedisCommand("MGET", arguments: $0.tags.map(keys.drain)) })
            let now = wallClockNow()
            for (read, reply) in zip(drainReads, drains) {
                for (tag, value) in zip(read.tags, reply.array ?? []) {
                    guard let bytes = value.bytes, let drain = try? DocumentCodec.decode(DrainRequest.self, from: bytes, source: tag) else { continue }
                    if drain.force || drain.deadline <= now {
                        workerExited(read.position, tag, code: nil, signal: SIGKILL)
                    } else {
                        // Drained at once: nothing is in flight in a simulated replica.
                        outbox.append(RedisCommand("SET", keys.drained(tag), DocumentCodec.encode(DrainedRecord(tag: tag, drainedAt: now)), "EX", 3600))
                        workerExited(read.position, tag, code: 0, signal: nil)
                    }
                }
            }
        }
    }

    mutating func start(_ position: Int, _ tag: String, _ assignment: AssignmentDocument) {
        nextPort = nextPort == .max ? 1024 : nextPort + 1
        nextPID += 1
        let delay = settings.readyDelay + nodes[position].slowness
        nodes[position].replicas[tag] = SimulatedReplica(backend: assignment.backend, version: assignment.version, port: nextPort, pid: nextPID)
        starting.append((.now + delay, position, tag))
    }

    /// Workers whose time to report ready came: their ready records.
    mutating func startDueWorkers() {
        guard !starting.isEmpty else { return }
        let now = ContinuousClock.now
        var due: [(position: Int, tag: String)] = []
        starting.removeAll { entry in
            guard entry.readyAt <= now else { return false }
            due.append((entry.position, entry.tag))
            return true
        }
        for (position, tag) in due where !nodes[position].lost {
            if let replica = nodes[position].replicas[tag], !replica.ready {
                nodes[position].replicas[tag]?.ready = true
                let ready = ReadyRecord(tag: tag, backend: replica.backend, node: nodes[position].id, version: replica.version,
                                        address: HostPort(host: "127.0.0.1", port: replica.port), pid: replica.pid,
                                        startedAt: wallClockNow(), readyAt: wallClockNow())
                outbox.append(RedisCommand("SET", keys.ready(tag), DocumentCodec.encode(ready)))
                changed.append(tag)
            }
        }
    }

    /// The worker `tag` exited: its node's exit record (the ready record retracted).
    mutating func workerExited(_ position: Int, _ tag: String, code: Int32?, signal: Int32?) {
        guard let replica = nodes[position].replicas.removeValue(forKey: tag) else { return }
        let record = ExitRecord(tag: tag, node: nodes[position].id, pid: replica.pid, code: code, signal: signal, exitedAt: wallClockNow())
        outbox.append(contentsOf: NodeLeaseCommands.exitWrites(record, keys: keys))
        changed.append(tag)
    }

    /// Sends the records of this tick: then the tags changed, and one wake-up.
    mutating func flush(_ client: RedisClient) async throws {
        guard !outbox.isEmpty || !changed.isEmpty else { return }
        var commands = outbox
        for chunk in stride(from: 0, to: changed.count, by: 1000) {
            commands.append(RedisCommand("SADD", arguments: [keys.changedReplicas] + changed[chunk..<min(chunk + 1000, changed.count)]))
        }
        commands.append(RedisCommand("PUBLISH", keys.wake, DocumentCodec.encode(WakeUp(event: .ready, subject: settings.prefix))))
        outbox = []
        changed = []
        for chunk in stride(from: 0, to: commands.count, by: 2000) {
            for reply in try await client.pipeline(Array(commands[chunk..<min(chunk + 2000, commands.count)])) {
                if let message = reply.errorMessage { throw RedisError(.server, "Redis refused a simulated write: \(message)") }
            }
        }
    }

    /// `kill-replica [TAG]`, `lose-node [ID]`, `slow-node ID SECONDS`, `status`: each answers one line.
    mutating func command(_ line: String) {
        let words = line.split(separator: " ").map(String.init)
        switch words.first {
        case "kill-replica":
            let candidates = nodes.indices.filter { !nodes[$0].lost }.flatMap { position in
                nodes[position].replicas.filter { $0.value.ready }.keys.map { (position, $0) }
            }
            guard let (position, tag) = words.count > 1 ? candidates.first(where: { $0.1 == words[1] }) : candidates.randomElement() else {
                say("error no such replica"); break
            }
            workerExited(position, tag, code: nil, signal: SIGKILL)
            say("killed \(tag)")
        case "lose-node":
            guard let position = words.count > 1 ? index[words[1]] : nodes.indices.filter({ !nodes[$0].lost }).randomElement() else {
                say("error no such node"); break
            }
            nodes[position].lost = true
            shared.lose(position)
            say("lost \(nodes[position].id) with \(nodes[position].replicas.count) replicas")
        case "slow-node":
            guard words.count > 2, let position = index[words[1]], let seconds = Double(words[2]) else { say("error usage: slow-node ID SECONDS"); break }
            nodes[position].slowness = .milliseconds(Int64(seconds * 1000))
            say("slowed \(words[1])")
        case "status":
            // A lost node's workers died with it.
            let live = nodes.filter { !$0.lost }
            let replicas = live.reduce(0) { $0 + $1.replicas.count }
            let ready = live.reduce(0) { $0 + $1.replicas.values.filter(\.ready).count }
            say("status nodes=\(nodes.count) lost=\(nodes.filter(\.lost).count) replicas=\(replicas) ready=\(ready) views=\(shared.routerViews.load(ordering: .relaxed))")
        default:
            say("error unknown command \(line) (kill-replica [TAG], lose-node [ID], slow-node ID SECONDS, status)")
        }
    }
}

/// A router that follows the routing view as `swerve router` does — a notice's delta when it
/// follows the held view, otherwise the snapshot and the deltas after it — and checks that no
/// view it reaches goes back (epoch, then version).
struct SimulatedRouter: Sendable {
    let index: Int
    let redis: RedisConfiguration
    let keys: ClusterKeys
    /// Counts the views checked.
    let shared: SharedFleetState
    let logger: Logger

    func run() async {
        let client = RedisClient(configuration: redis, logger: logger)
        defer { client.close() }
        let subscriber = RedisSubscriber(configuration: redis, logger: logger)
        var last: (epoch: Int64, version: Int)?
        try? await subscriber.subscribe(to: [keys.snapshots]) { subscription in
            for await event in subscription {
                guard case .message(let message) = event,
                      let notice = try? JSONDecoder().decode(NoticePosition.self, from: Data(message.payload)),
                      notice.kind == .routing else { continue }
                let read: (Int64, Int)
                if let delta = notice.delta, let held = last, held == (notice.epoch, delta.from) {
                    read = (notice.epoch, delta.version) // follows the held view: applied, nothing read
                } else {
                    guard let chained = try? await readChain(client) else { continue }
                    read = chained
                }
                if let last, read < last {
                    say("VIOLATION router \(index) read view \(read) after \(last)")
                            }
                if last.map({ read > $0 }) ?? true { last = read }
                shared.routerViews.add(1, ordering: .relaxed)
            }
        }
    }
}

extension SimulatedRouter {
    /// The routing snapshot's epoch and version, followed through the deltas stored after it.
    func readChain(_ client: RedisClient) async throws -> (Int64, Int)? {
        let replies = try await client.transaction([RedisCommand("GET", keys.routingSnapshot), RedisCommand("LRANGE", keys.routingDeltas, 0, -1)])
        guard let bytes = replies[0].bytes, var (epoch, version) = Self.header(bytes) else { return nil }
        for reply in replies[1].array ?? [] {
            guard let notice = try? JSONDecoder().decode(DeltaPosition.self, from: Data(reply.bytes ?? [])),
                  notice.epoch == epoch, notice.delta.from == version else { break }
            (epoch, version) = (notice.epoch, notice.delta.version)
        }
        return (epoch, version)
    }

    /// A delta's place in the chain, without its replicas: the simulated routers check
    /// versions, and decoding deltas of thousands of replicas whole (up to a thousand stored
    /// ones at each gap) starved the simulator at 100,000 replicas.
    struct DeltaPosition: Decodable {
        struct Versions: Decodable {
            var from: Int
            var version: Int
        }
        var epoch: Int64
        var delta: Versions
    }

    /// A notice's kind and place, its delta's versions when it has one.
    struct NoticePosition: Decodable {
        var kind: SnapshotNotice.Kind
        var epoch: Int64
        var version: Int
        var delta: DeltaPosition.Versions?
    }

    /// A routing snapshot's epoch and view version, without decoding its replicas: decoding
    /// 7 MB (100,000 replicas) per change would starve the simulated fleet's own heartbeats on
    /// this 2-core machine. Keys are sorted (`epoch` < `schemaVersion` < `view`, and in the view
    /// `backends` < `version`), so the first `"epoch":` is the snapshot's and the last
    /// `"version":` is the view's.
    static func header(_ bytes: [UInt8]) -> (Int64, Int)? {
        func number(after key: String, last: Bool) -> Int64? {
            let pattern = Array(key.utf8)
            guard bytes.count > pattern.count else { return nil }
            func value(at start: Int) -> Int64? {
                guard bytes[start..<(start + pattern.count)].elementsEqual(pattern) else { return nil }
                var value: Int64 = 0
                var index = start + pattern.count
                while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) {
                    value = value * 10 + Int64(bytes[index] - UInt8(ascii: "0"))
                    index += 1
                }
                return index > start + pattern.count ? value : nil
            }
            let starts = 0...(bytes.count - pattern.count)
            if last {
                for start in starts.reversed() where bytes[start] == pattern[0] { if let found = value(at: start) { return found } }
            } else {
                for start in starts where bytes[start] == pattern[0] { if let found = value(at: start) { return found } }
            }
            return nil
        }
        guard let epoch = number(after: "\"epoch\":", last: false), let version = number(after: "\"version\":", last: true) else { return nil }
        return (epoch, Int(version))
    }
}

/// One line on stdout, at once (whoever drives the simulator reads it line by line).
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
