import ArgumentParser
import Foundation
import Logging
import SwerveClient
import SwerveLauncher
import SwerveCore
import SwerveProtocol
import SwerveRedis

/// `swerve-bench failover`: how fast control comes back after a leader dies or leaves, and how
/// fast a new replica becomes routable. It starts its own node agent and three controllers
/// against a Redis it may reconfigure (keyspace notifications), kills leaders, and prints one
/// line per measurement (`name median_ms max_ms count`).
struct FailoverBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "failover",
        abstract: "Leader kill to first reconcile, SIGTERM to new leader, ready key to routing snapshot.",
        discussion: """
            Example (ops/bench failover starts the Redis):
              swerve-bench failover --url redis://127.0.0.1:6390 --swerve .build/release/swerve --logs /tmp/bench
            """
    )

    @OptionGroup var options: BenchClusterOptions

    @Option(help: "Leader kills of each kind, and replicas added.")
    var runs = 20

    @Option(help: "The controllers' lease TTL in milliseconds (default: theirs).")
    var leaseTTLMs: Int?

    @Option(help: "Seconds to count leader changes nobody caused, both cores kept busy.")
    var flapSeconds = 30

    func run() async throws {
        let (configuration, client, logger) = try options.connect()
        defer { client.close() }
        let keys = try ClusterKeys(cluster: "failover\(UInt32.random(in: 0...UInt32.max))")
        // Keyspace events for string commands: the leader's status write is its first completed
        // reconcile; a worker's ready-key write is when it became ready.
        try await client.send("CONFIG", "SET", "notify-keyspace-events", "K$")
        let database = configuration.database
        let statusChannel = "__keyspace@\(database)__:\(keys.status)"
        let readyPattern = "__keyspace@\(database)__:\(keys.ready("*"))"

        let (cluster, watchdog) = try options.start(cluster: keys.cluster, limit: .seconds(30 + runs * 15), command: "failover", leaseTTLMs: leaseTTLMs)
        defer { cluster.stopAll() }
        defer { watchdog.cancel() }
        try cluster.startNode("n1")
        for index in 1...3 { try cluster.startController("c\(index)") }

        let clusterClient = ClusterClient(keys: keys, client: client, logger: logger)
        let echo = ReplicaConfig(workload: .builtin(name: "echo"), resources: Resources(cpu: 0.01))
        let goal = try await clusterClient.submit(.createBackend(tag: "bench", config: BackendConfig(numReplicas: 2), replicaConfig: echo))
        guard try await clusterClient.wait(for: goal, backend: "bench", progress: { _ in }).failure == nil else {
            throw ValidationError("the benchmark backend did not come up")
        }

        // What waiting for a replica (WAIT, issue 15) adds to a step that acts: a checkpoint-sized
        // write alone, and the same write followed by WAIT 1, as a leader sends them.
        let info = try await client.send("INFO", "replication").string ?? ""
        if info.contains("connected_slaves:1") || info.contains("connected_slaves:2") {
            let checkpoint = [UInt8](repeating: UInt8(ascii: "x"), count: 64 * 1024)
            var plain: [Duration] = []
            var waited: [Duration] = []
            for _ in 0..<(runs * 10) {
                let start = ContinuousClock.now
                _ = try await client.send("SET", keys.prefix + "bench:checkpoint", checkpoint)
                plain.append(.now - start)
                let again = ContinuousClock.now
                _ = try await client.pipeline([RedisCommand("SET", keys.prefix + "bench:checkpoint", checkpoint), RedisCommand("WAIT", 1, 250)])
                waited.append(.now - again)
            }
            report("step_write", plain)
            report("step_write_wait_replica", waited)
        }

        let subscriber = RedisSubscriber(configuration: configuration, logger: logger)
        try await subscriber.subscribe(to: [keys.leaderEvents, statusChannel, keys.snapshots], patterns: [readyPattern]) { subscription in
            var events = subscription.makeAsyncIterator()
            guard await events.next() == .subscribed else { throw ValidationError("could not subscribe") }

            /// Waits for the next message satisfying `matches`; returns when it arrived.
            func next(_ what: String, _ matches: (RedisPubSubMessage) async throws -> Bool) async throws -> ContinuousClock.Instant {
                while let event = await events.next() {
                    if case .message(let message) = event, try await matches(message) { return .now }
                }
                throw ValidationError("the subscription ended while waiting for \(what)")
            }
            func elected(otherThan old: String) -> (RedisPubSubMessage) -> Bool {
                { message in
                    guard message.channel == keys.leaderEvents,
                          let event = try? DocumentCodec.decode(LeaderEvent.self, from: message.payload, source: keys.leaderEvents) else { return false }
                    return event.event == .elected && event.id != old
                }
            }
            func currentLeader() async throws -> LeaderRecord {
                while true {
                    if let bytes = try await client.send("GET", keys.leader).bytes {
                        return try DocumentCodec.decode(LeaderRecord.self, from: bytes, source: keys.leader)
                    }
                    _ = try await next("a leader") { elected(otherThan: "")($0) }
                }
            }

            /// Starts `id` again and waits until it follows (its presence channel is subscribed):
            /// each measurement starts from a cluster at rest, not one with a process starting.
            func restart(_ id: String) async throws {
                try cluster.startController(id)
                while try await client.send("PUBSUB", "CHANNELS", keys.presence("\(id):*")).array?.isEmpty != false {
                    try await Task.sleep(for: .milliseconds(10))
                }
            }

            // SIGKILL: to the new leader's election and to its first completed reconcile.
            var killToElected: [Duration] = []
            var killToReconcile: [Duration] = []
            for _ in 0..<runs {
                let leader = try await currentLeader()
                let killed = ContinuousClock.now
                cluster.signal(leader.id, SIGKILL)
                let electedAt = try await next("a new leader", elected(otherThan: leader.id))
                let reconciledAt = try await next("the new leader's first reconcile") { $0.channel == statusChannel && $0.text == "set" }
                killToElected.append(electedAt - killed)
                killToReconcile.append(reconciledAt - killed)
                await cluster.awaitExit(leader.id)
                try await restart(leader.id)
            }
            report("sigkill_to_first_reconcile", killToReconcile)
            report("sigkill_to_new_leader", killToElected)

            // SIGKILL while a client scales up: to the request's goal settled by the new leader
            // (one more replica started and ready).
            var killToScaled: [Duration] = []
            for run in 0..<runs {
                let leader = try await currentLeader()
                let killed = ContinuousClock.now
                cluster.signal(leader.id, SIGKILL)
                let goal = try await clusterClient.submit(.updateBackendConfig(tag: "bench", patch: BackendConfigPatch(numReplicas: 3 + run)))
                guard try await clusterClient.wait(for: goal, backend: "bench", progress: { _ in }).failure == nil else {
                    throw ValidationError("a scale through the new leader failed")
                }
                killToScaled.append(.now - killed)
                _ = try await next("the new leader's announcement", elected(otherThan: leader.id))
                await cluster.awaitExit(leader.id)
                try await restart(leader.id)
            }
            report("sigkill_to_scale_done", killToScaled)
            let back = try await clusterClient.submit(.updateBackendConfig(tag: "bench", patch: BackendConfigPatch(numReplicas: 2)))
            guard try await clusterClient.wait(for: back, backend: "bench", progress: { _ in }).failure == nil else {
                throw ValidationError("the benchmark backend did not scale back to 2")
            }

            // SIGSTOP: a frozen leader keeps its connections; its lease must expire.
            var stopToElected: [Duration] = []
            for _ in 0..<max(1, runs / 2) {
                let leader = try await currentLeader()
                // Frozen some time into its term, at a random point between two renewals (the
                // lease then has TTL − 0…200 ms to run), not just after its election.
                try await Task.sleep(for: .milliseconds(Int.random(in: 300...700)))
                let stopped = ContinuousClock.now
                cluster.signal(leader.id, SIGSTOP)
                stopToElected.append(try await next("a new leader", elected(otherThan: leader.id)) - stopped)
                cluster.signal(leader.id, SIGKILL)
                cluster.signal(leader.id, SIGCONT)
                await cluster.awaitExit(leader.id)
                try await restart(leader.id)
            }
            report("sigstop_to_new_leader", stopToElected)

            // SIGTERM: the leader releases the lease and announces it.
            var termToElected: [Duration] = []
            for _ in 0..<runs {
                let leader = try await currentLeader()
                let stopped = ContinuousClock.now
                cluster.signal(leader.id, SIGTERM)
                termToElected.append(try await next("a new leader", elected(otherThan: leader.id)) - stopped)
                await cluster.awaitExit(leader.id)
                try await restart(leader.id)
            }
            report("sigterm_to_new_leader", termToElected)

            // A replica's ready key to the routing snapshot that includes it.
            var readyToRouted: [Duration] = []
            for replicas in 3..<(3 + runs) {
                let before = try await routedTags(keys: keys, client: client)
                _ = try await clusterClient.submit(.updateBackendConfig(tag: "bench", patch: BackendConfigPatch(numReplicas: replicas)))
                // The first ready-key write of a tag not routed before (heartbeats of the others
                // write their keys too); then the first routing notice whose snapshot has it.
                var tag = ""
                let readyAt = try await next("a ready key") { message in
                    guard message.pattern == readyPattern, message.text == "set" else { return false }
                    // The key is keys.ready(tag): what is left around the tag.
                    let key = message.channel.dropFirst("__keyspace@\(database)__:".count)
                    let head = keys.ready("").dropLast(":ready".count)
                    tag = String(key.dropFirst(head.count).dropLast(":ready".count))
                    return !before.contains(tag)
                }
                let routedAt = try await next("a routing snapshot with \(tag)") { message in
                    guard message.channel == keys.snapshots, message.text.contains("\"routing\"") else { return false }
                    return try await routedTags(keys: keys, client: client).contains(tag)
                }
                readyToRouted.append(routedAt - readyAt)
            }
            report("ready_key_to_routing_snapshot", readyToRouted)

            // Flaps: leader changes nobody caused, with both cores kept busy by spinning
            // processes at the controllers' priority.
            let spinners = try (0..<2).map { _ in
                let spinner = Process()
                spinner.executableURL = URL(fileURLWithPath: "/bin/sh")
                // Ends by itself when this benchmark does, however it ends (sh ignores SIGTERM here).
                spinner.arguments = ["-c", "while kill -0 \(getpid()) 2>/dev/null; do :; done"]
                try spinner.run()
                return spinner
            }
            defer { for spinner in spinners { kill(spinner.processIdentifier, SIGKILL) } }
            // The leader record's epoch, read every 50 ms: a change is a flap.
            var epoch = try await currentLeader().epoch
            var flaps = 0
            let end = ContinuousClock.now + .seconds(flapSeconds)
            while ContinuousClock.now < end {
                try await Task.sleep(for: .milliseconds(50))
                guard let bytes = try await client.send("GET", keys.leader).bytes,
                      let record = try? DocumentCodec.decode(LeaderRecord.self, from: bytes, source: keys.leader) else { continue }
                if record.epoch != epoch { flaps += 1; epoch = record.epoch }
            }
            print("flaps_under_load \(flaps) \(flapSeconds) 1")
        }
    }

    private func report(_ name: String, _ values: [Duration]) {
        let sorted = values.sorted()
        let median = sorted.isEmpty ? .zero : sorted[sorted.count / 2]
        print("\(name) \(ms(median)) \(ms(sorted.last ?? .zero)) \(sorted.count)")
    }
}

/// The replica tags of the stored routing snapshot.
private func routedTags(keys: ClusterKeys, client: RedisClient) async throws -> Set<String> {
    guard let snapshot = try await ClusterClient.routingSnapshot(client: client, keys: keys) else { return [] }
    return Set(snapshot.view.backends.values.flatMap { $0.map(\.tag) })
}
