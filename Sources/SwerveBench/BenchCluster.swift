import ArgumentParser
import Foundation
import Logging
import SwerveLauncher
import SwerveRedis

/// What the benchmarks that run their own controllers and node agent take: a Redis they may
/// reconfigure, the `swerve` binary and a directory for logs.
struct BenchClusterOptions: ParsableArguments {
    @Option(help: "The Redis URL of a server this benchmark may reconfigure and write to.")
    var url: String

    @Option(help: "The swerve binary to run controllers and the node agent with.")
    var swerve: String

    @Option(help: "A directory for the processes' logs.")
    var logs: String

    /// A warnings-only logger and a client of this Redis (close it when done).
    func connect() throws -> (configuration: RedisConfiguration, client: RedisClient, logger: Logger) {
        var logger = Logger(label: "swerve-bench")
        logger.logLevel = .warning
        let configuration = try RedisConfiguration(url: url)
        return (configuration, RedisClient(configuration: configuration, logger: logger), logger)
    }

    /// A local cluster on this Redis (a node agent with 64 CPUs, warnings only), and a watchdog
    /// that stops it and exits 1 after `limit`: a missed event must not hang whoever runs the
    /// benchmark. Cancel the watchdog and stop the cluster when done.
    func start(cluster: String, limit: Duration, command: String, leaseTTLMs: Int? = nil) throws -> (LocalCluster, Task<Void, any Error>) {
        var settings = LocalCluster.Settings(swerve: swerve, directory: logs, cluster: cluster, redisURL: url, leaseTTLMs: leaseTTLMs)
        settings.nodeCPU = 64
        settings.logLevel = "warning"
        let local = try LocalCluster(settings: settings)
        let watchdog = Task { [logs] in
            try await Task.sleep(for: limit)
            FileHandle.standardError.write(Data("swerve-bench \(command): no result after \(limit); giving up (logs in \(logs))\n".utf8))
            local.stopAll()
            Foundation.exit(1)
        }
        return (local, watchdog)
    }
}
