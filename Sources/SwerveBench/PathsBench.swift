import ArgumentParser
import Foundation
import Logging
import SwerveClient
import SwerveCore
import SwerveLauncher
import SwerveProtocol
import SwerveRedis

/// `swerve-bench paths`: where the time of each routine path goes, stage by stage — deploying
/// 8 replicas, replacing a replica killed with SIGKILL, scaling 8 → 1 and 1 → 8 — read from the keys each
/// process writes on the way (keyspace notifications: a stage ends when its key is written).
/// Prints one line per stage: `path.stage median_ms max_ms runs`.
struct PathsBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "paths",
        abstract: "Deploy 8, replace a killed replica, scale 8 -> 1 and 1 -> 8: each path's stages.",
        discussion: """
            Example (ops/bench paths starts the Redis):
              swerve-bench paths --url redis://127.0.0.1:6390 --swerve .build/release/swerve --logs /tmp/bench
            """
    )

    @OptionGroup var options: BenchClusterOptions

    @Option(help: "Runs of each path.")
    var runs = 10

    @Option(help: "The scale-down's wait loop, in seconds (the backend's gracefulShutdownWaitLoopS).")
    var waitLoopS = 0.5

    func run() async throws {
        let (configuration, client, logger) = try options.connect()
        defer { client.close() }
        let keys = try ClusterKeys(cluster: "paths\(UInt32.random(in: 0...UInt32.max))")
        // Strings and hashes: ready, exit, drain, drained and goal keys; assignment hashes.
        try await client.send("CONFIG", "SET", "notify-keyspace-events", "K$h")
        let space = "__keyspace@\(configuration.database)__:"

        let (cluster, watchdog) = try options.start(cluster: keys.cluster, limit: .seconds(60 + runs * 20), command: "paths")
        defer { cluster.stopAll() }
        defer { watchdog.cancel() }
        try cluster.startNode("n1")
        try cluster.startController("c1")
        let clusterClient = ClusterClient(keys: keys, client: client, logger: logger)
        let echo = ReplicaConfig(workload: .builtin(name: "echo"), resources: Resources(cpu: 0.01))

        var stages: [String: [Duration]] = [:]
        func record(_ name: String, _ duration: Duration) { stages[name, default: []].append(duration) }

        let subscriber = RedisSubscriber(configuration: configuration, logger: logger)
        try await subscriber.subscribe(to: [keys.snapshots], patterns: [space + keys.prefix + "*"]) { subscription in
            var events = subscription.makeAsyncIterator()
            guard await events.next() == .subscribed else { throw ValidationError("could not subscribe") }

            /// Every write seen, in order: a key of this cluster (without its prefix) and its
            /// event, or a routing notice with the view it published (read as it arrived).
            var log: [(at: ContinuousClock.Instant, key: String, event: String, routed: [String: Set<String>]?)] = []
            func pull() async throws {
                while let event = await events.next() {
                    guard case .message(let message) = event else { continue }
                    if message.pattern != nil {
                        log.append((.now, String(message.channel.dropFirst(space.count + keys.prefix.count)), message.text, nil))
                        return
                    }
                    if message.channel == keys.snapshots, message.text.contains("\"routing\"") {
                        let at = ContinuousClock.now
                        let view = try await ClusterClient.routingSnapshot(client: client, keys: keys)?.view.backends ?? [:]
                        log.append((at, "", "", view.mapValues { Set($0.map(\.tag)) }))
                        return
                    }
                }
                throw ValidationError("the subscription ended")
            }
            /// The first write at or after `index` matching `matches(key, event)`: when, and its key.
            func find(from index: Int, _ what: String, _ matches: (String, String) -> Bool) async throws -> (ContinuousClock.Instant, String) {
                var position = index
                while true {
                    while position < log.count {
                        let entry = log[position]
                        if entry.routed == nil, matches(entry.key, entry.event) { return (entry.at, entry.key) }
                        position += 1
                    }
                    try await pull()
                }
            }
            /// The first routing notice at or after `index` whose view routes exactly `tags` of `backend`.
            func routed(from index: Int, _ backend: String, _ tags: Set<String>) async throws -> ContinuousClock.Instant {
                var position = index
                while true {
                    while position < log.count {
                        if let view = log[position].routed, (view[backend] ?? []) == tags { return log[position].at }
                        position += 1
                    }
                    try await pull()
                }
            }
            func tag(_ key: String, _ suffix: String) -> String? {
                key.hasPrefix("replica:") && key.hasSuffix(suffix) ? String(key.dropFirst("replica:".count).dropLast(suffix.count)) : nil
            }
            func assigned(_ key: String, _ event: String) -> Bool { key.hasPrefix("assignments:") && !key.hasSuffix(":version") && event == "hset" }
            /// The first `count` writes at or after `index` of a `suffix` key (`:ready`, `:drained`)
            /// of a replica of `backend` not in `known`: their tags, and when the last came.
            func newReplicaKeys(from index: Int, _ suffix: String, of backend: String, count: Int, besides known: Set<String> = [])
                async throws -> (tags: Set<String>, last: ContinuousClock.Instant) {
                var tags: Set<String> = []
                var last = ContinuousClock.now
                while tags.count < count {
                    let (at, key) = try await find(from: index, "a \(suffix) key") { key, event in
                        event == "set" && tag(key, suffix).map { $0.hasPrefix(backend + "#") && !known.contains($0) && !tags.contains($0) } == true
                    }
                    tags.insert(tag(key, suffix)!)
                    last = tags.count == 1 ? at : max(last, at)
                }
                return (tags, last)
            }
            /// When the goal `id` was settled (at or after `index`).
            func settled(_ id: GoalID, from index: Int) async throws -> ContinuousClock.Instant {
                try await find(from: index, "goal \(id)") { key, event in key == "goal:" + id && event == "set" }.0
            }

            for run in 0..<runs {
                let backend = "b\(run)"
                // Deploy 8: request -> first assignment (the leader placed them) -> every ready
                // key (the workers started) -> the goal settled -> a routing view with all 8.
                let config = BackendConfig(numReplicas: 8, gracefulShutdownWaitLoopS: waitLoopS)
                var mark = log.count
                let applied = ContinuousClock.now
                let goal = try await clusterClient.submit(.createBackend(tag: backend, config: config, replicaConfig: echo))
                let (placed, _) = try await find(from: mark, "the first assignment", assigned)
                let (ready, allReady) = try await newReplicaKeys(from: mark, ":ready", of: backend, count: 8)
                let deployed = try await settled(goal, from: mark)
                let routedAt = try await routed(from: mark, backend, ready)
                record("deploy8.placed", placed - applied)
                record("deploy8.started", allReady - placed)
                record("deploy8.settled", deployed - allReady)
                record("deploy8.routed", routedAt - allReady)
                record("deploy8.total", max(deployed, routedAt) - applied)

                // A replica SIGKILLed: its exit record (the agent noticed) -> a new assignment
                // (the leader replaced it) -> the new replica's ready key -> routed without the
                // dead one and with the new one.
                let victim = ready.sorted()[run % ready.count]
                guard let bytes = try await client.send("GET", keys.ready(victim)).bytes else { throw ValidationError("no ready key for \(victim)") }
                let victimRecord = try DocumentCodec.decode(ReadyRecord.self, from: bytes, source: keys.ready(victim))
                mark = log.count
                let killed = ContinuousClock.now
                kill(victimRecord.pid, SIGKILL)
                let (exited, _) = try await find(from: mark, "the exit record") { key, event in key == "replica:\(victim):exit" && event == "set" }
                let (replaced, _) = try await find(from: mark, "the replacement's assignment", assigned)
                let (replacement, replacementReady) = try await newReplicaKeys(from: mark, ":ready", of: backend, count: 1, besides: ready)
                let rerouted = try await routed(from: mark, backend, ready.subtracting([victim]).union(replacement))
                record("replace.noticed", exited - killed)
                record("replace.placed", replaced - exited)
                record("replace.started", replacementReady - replaced)
                record("replace.routed", rerouted - replacementReady)
                record("replace.total", rerouted - killed)

                // Scale 8 -> 1: request -> the drain keys (the leader chose and unrouted them)
                // -> every drained key (wait loop, then nothing in flight) -> the goal settled.
                mark = log.count
                let scaled = ContinuousClock.now
                let down = try await clusterClient.submit(.updateBackendConfig(tag: backend, patch: BackendConfigPatch(numReplicas: 1)))
                let (decided, _) = try await find(from: mark, "the first drain key") { key, event in event == "set" && tag(key, ":drain")?.hasPrefix(backend + "#") == true }
                let drainedAt = try await newReplicaKeys(from: mark, ":drained", of: backend, count: 7).last
                let done = try await settled(down, from: mark)
                record("scale8to1.decided", decided - scaled)
                record("scale8to1.drained_beyond_wait_loop", drainedAt - decided - .milliseconds(Int64(waitLoopS * 1000)))
                record("scale8to1.settled", done - drainedAt)
                record("scale8to1.total_beyond_wait_loop", done - scaled - .milliseconds(Int64(waitLoopS * 1000)))

                // Scale 1 -> 8: request -> the seven new ready keys -> the goal settled.
                mark = log.count
                let upAt = ContinuousClock.now
                let up = try await clusterClient.submit(.updateBackendConfig(tag: backend, patch: BackendConfigPatch(numReplicas: 8)))
                let upDone = try await settled(up, from: mark)
                record("scale1to8.total", upDone - upAt)

                _ = try await clusterClient.submit(.deleteBackend(tag: backend, force: true))
            }
        }
        for name in stages.keys.sorted() {
            let sorted = stages[name]!.sorted()
            print("\(name) \(ms(sorted[sorted.count / 2])) \(ms(sorted.last!)) \(sorted.count)")
        }
    }
}
