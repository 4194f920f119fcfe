import ArgumentParser
import Foundation
import Logging
import SwerveCore
import SwerveProtocol
import SwerveRedis

/// `swerve-bench worker`: time from an assignment written (as the leader writes it) to the
/// replica's `ready` wake-up, against a running `swerve node --id NODE`.
struct WorkerBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Assignment-to-ready latency of replicas started by a running node agent.",
        discussion: """
            Example (ops/bench worker starts the Redis and the node agent):
              swerve-bench worker --url redis://127.0.0.1:6390 --cluster bench --node n1
            """
    )

    @Option(help: "The Redis URL the node agent uses.")
    var url: String

    @Option(help: "The cluster name the node agent uses.")
    var cluster: String

    @Option(help: "The node agent's id.")
    var node: String

    @Option(help: "Sequential replicas timed per kind.")
    var runs = 20

    func run() async throws {
        var logger = Logger(label: "swerve-bench")
        logger.logLevel = .warning
        let configuration = try RedisConfiguration(url: url)
        let client = RedisClient(configuration: configuration, logger: logger)
        defer { client.close() }
        let keys = try ClusterKeys(cluster: cluster)
        let subscriber = RedisSubscriber(configuration: configuration, logger: logger)
        let echo = ReplicaConfig(workload: .builtin(name: "echo"), resources: Resources(cpu: 0.01))
        let command = ReplicaConfig(workload: .command(arguments: ["sh", "-c", "exec python3 -m http.server --bind 127.0.0.1 $PORT"]), resources: Resources(cpu: 0.01))

        try await subscriber.subscribe(to: [keys.wake]) { subscription in
            var iterator = subscription.makeAsyncIterator()
            guard await iterator.next() == .subscribed else { throw ValidationError("could not subscribe") }
            var counter = 0
            func startAndWait(_ config: ReplicaConfig, count: Int) async throws -> Duration {
                let tags = (0..<count).map { _ -> String in counter += 1; return "bench#\(counter)" }
                let started = ContinuousClock.now
                var commands = tags.map { tag in
                    RedisCommand("HSET", keys.assignments(node), tag, DocumentCodec.encode(AssignmentDocument(ReplicaAssignment(
                        replica: ReplicaReference(tag: tag, backend: "bench", node: node), version: config.version,
                        replicaConfig: config, userConfig: nil, maxConcurrentQueries: 100, gracefulShutdownWaitLoopS: 0))))
                }
                commands += [RedisCommand("INCR", keys.assignmentsVersion(node)), RedisCommand("PUBLISH", keys.nodeNotify(node), "bench")]
                _ = try await client.pipeline(commands)
                var waiting = Set(tags)
                while !waiting.isEmpty, let event = await iterator.next() {
                    guard case .message(let message) = event, let wake = try? DocumentCodec.decode(WakeUp.self, from: message.payload, source: keys.wake),
                          wake.event == .ready else { continue }
                    waiting.remove(wake.subject)
                }
                let elapsed = ContinuousClock.now - started
                // Remove them again (the node kills what is no longer assigned).
                _ = try await client.pipeline([RedisCommand("HDEL", arguments: [keys.assignments(node)] + tags),
                                               RedisCommand("INCR", keys.assignmentsVersion(node)), RedisCommand("PUBLISH", keys.nodeNotify(node), "bench")])
                return elapsed
            }
            func median(_ values: [Duration]) -> Duration { values.sorted()[values.count / 2] }

            var echoTimes: [Duration] = []
            for _ in 0..<runs { echoTimes.append(try await startAndWait(echo, count: 1)) }
            print("echo_ready_median_ms \(ms(median(echoTimes)))")
            var commandTimes: [Duration] = []
            for _ in 0..<max(3, runs / 4) { commandTimes.append(try await startAndWait(command, count: 1)) }
            print("command_ready_median_ms \(ms(median(commandTimes)))")
            var batchTimes: [Duration] = []
            for _ in 0..<3 { batchTimes.append(try await startAndWait(echo, count: 20)) }
            print("twenty_echo_ready_median_ms \(ms(median(batchTimes)))")
        }
    }

}
