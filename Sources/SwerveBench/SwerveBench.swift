import Foundation
import ArgumentParser
import Logging
import SwerveRedis

/// `swerve-bench`: the measuring half of `ops/bench`. It prints one machine-readable line per
/// measurement (`name ops_per_second`); `ops/bench` runs the reference tools beside it and
/// prints the table with ratios.
@main
struct SwerveBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "swerve-bench",
        abstract: "Benchmarks Swerve's parts; run through ops/bench, which compares them with reference tools.",
        subcommands: [RedisBench.self, CoreBench.self, WorkerBench.self, FailoverBench.self, PathsBench.self, ScaleBench.self, AutoscaleBench.self]
    )
}

struct RedisBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "redis",
        abstract: "Sequential and pipelined SET throughput of the Swift Redis client on one connection.",
        discussion: """
            Example:
              swerve-bench redis --url redis://127.0.0.1:6390 --requests 100000 --pipeline 16
            """
    )

    @Option(help: "The Redis URL of a server this benchmark may write to.")
    var url: String

    @Option(help: "Commands per measurement.")
    var requests = 100_000

    @Option(help: "Commands per pipelined round trip.")
    var pipeline = 16

    func run() async throws {
        var logger = Logger(label: "swerve-bench")
        logger.logLevel = .warning
        let client = RedisClient(configuration: try RedisConfiguration(url: url), logger: logger)
        defer { client.close() }
        let value = [UInt8](repeating: UInt8(ascii: "x"), count: 3)
        try await client.send("PING")

        let clock = ContinuousClock()
        let sequential = try await clock.measure {
            for _ in 0..<requests {
                try await client.send("SET", "key:__rand_int__", value)
            }
        }
        print("sequential_set \(rate(requests, sequential))")

        let onThread = try await client.withConnectionThread {
            try await clock.measure {
                for _ in 0..<requests {
                    try await client.send("SET", "key:__rand_int__", value)
                }
            }
        }
        print("sequential_set_on_connection_thread \(rate(requests, onThread))")

        let batch = (0..<pipeline).map { _ in RedisCommand("SET", "key:__rand_int__", value) }
        let rounds = max(requests / pipeline, 1)
        let pipelined = try await clock.measure {
            for _ in 0..<rounds {
                let replies = try await client.pipeline(batch)
                precondition(replies.count == pipeline)
            }
        }
        print("pipelined_set \(rate(rounds * pipeline, pipelined))")
    }

    private func rate(_ count: Int, _ elapsed: Duration) -> Int {
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return Int((Double(count) / seconds).rounded())
    }
}

/// `duration` in milliseconds, as the benchmarks print it.
func ms(digits: Int = 1, _ duration: Duration) -> String {
    let (seconds, attoseconds) = duration.components
    return String(format: "%.\(digits)f", Double(seconds) * 1000 + Double(attoseconds) / 1e15)
}
