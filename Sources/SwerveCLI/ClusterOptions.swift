import ArgumentParser
import Foundation
import Logging
import SwerveClient
import SwerveCore
import SwerveErrors
import SwerveMetrics
import SwerveProtocol
import SwerveRedis
import SwerveSystem

/// `--redis` and `--cluster`, shared by every subcommand that talks to a cluster, with
/// `SWERVE_REDIS_URL` and `SWERVE_CLUSTER` as fallbacks.
struct ClusterOptions: ParsableArguments {
    @Option(name: .customLong("redis"), help: ArgumentHelp("The Redis URL (redis://[user:password@]host:port[/db] or unix:///path); keep the password in SWERVE_REDIS_PASSWORD or SWERVE_REDIS_PASSWORD_FILE.", valueName: "url"))
    var redisURL: String = ProcessInfo.processInfo.environment["SWERVE_REDIS_URL"] ?? "redis://127.0.0.1:6379"

    @Option(help: ArgumentHelp("The cluster name: every key lives under swerve:{NAME}:.", valueName: "name"))
    var cluster: String = ProcessInfo.processInfo.environment["SWERVE_CLUSTER"] ?? "default"

    func redisConfiguration() throws -> RedisConfiguration {
        do {
            return try RedisConfiguration(url: redisURL, environment: ProcessInfo.processInfo.environment)
        } catch {
            throw ArgumentParser.ValidationError("--redis: \(error.message)")
        }
    }

    /// A client of the cluster, for the request commands (quiet: they print their own output).
    func clusterClient() throws -> ClusterClient {
        let logger = Logger(label: "swerve.client") { _ in SwiftLogNoOpLogHandler() }
        return ClusterClient(keys: try keys(), client: RedisClient(configuration: try redisConfiguration(), logger: logger), logger: logger)
    }

    func keys() throws -> ClusterKeys {
        do {
            return try ClusterKeys(cluster: cluster)
        } catch {
            throw ArgumentParser.ValidationError("--cluster: \(error.message)")
        }
    }
}

/// With `SWERVE_DRY_RUN=1`, ends the command successfully once its flags and environment were
/// read and checked, before it connects or binds anything: what a deployment's tests use to
/// check every service's command line and environment (`docs/PROTOCOL.md`).
func exitIfDryRun(_ command: String, _ summary: @autoclosure () -> String) throws {
    guard ProcessInfo.processInfo.environment["SWERVE_DRY_RUN"] == "1" else { return }
    print("swerve \(command): configuration ok: \(summary())")
    throw ExitCode.success
}

/// Where a long-running process serves its metrics: `flag` (`--metrics-address`), else
/// `SWERVE_METRICS_ADDRESS`; nil for nowhere.
func metricsAddress(_ flag: String?) throws -> HostPort? {
    guard let text = flag ?? ProcessInfo.processInfo.environment["SWERVE_METRICS_ADDRESS"], !text.isEmpty else { return nil }
    return try parseHostPort(text, option: "--metrics-address (or SWERVE_METRICS_ADDRESS)")
}

/// Installs the Prometheus backend (metrics made after this record into it) and serves it on
/// `address` until the process exits; one that cannot listen ends `swerve COMMAND` with exit
/// code 1.
@discardableResult
func serveMetrics(_ command: String, on address: HostPort, logger: Logger, durationBuckets: [String: [Duration]]) async throws -> MetricsEndpoint {
    let registry = MetricsEndpoint.bootstrap(durationBuckets: durationBuckets)
    do {
        let endpoint = try await MetricsEndpoint.start(host: address.host, port: Int(address.port), registry: registry)
        logger.info("serving metrics", metadata: ["url": "http://\(endpoint.address)/metrics"])
        return endpoint
    } catch {
        FileHandle.standardError.write(Data("swerve \(command): cannot serve metrics on \(address): \(error)\n".utf8))
        throw ExitCode(1)
    }
}

/// The process's logger (`SWERVE_LOG_LEVEL`, `SWERVE_LOG_FORMAT`: see ``ProcessLog``).
/// - Throws: a validation error naming the variable whose value is wrong.
func processLogger(_ label: String) throws -> Logger {
    do {
        return try ProcessLog.logger(label, environment: ProcessInfo.processInfo.environment)
    } catch {
        throw ArgumentParser.ValidationError(error.message)
    }
}

/// An integer from the environment variable `name`, nil when it is unset or empty.
/// - Throws: a validation error naming the variable when its value is not a whole number.
func environmentInteger(_ name: String) throws -> Int? {
    guard let text = ProcessInfo.processInfo.environment[name], !text.isEmpty else { return nil }
    guard let value = Int(text) else { throw ArgumentParser.ValidationError("\(name): must be a whole number, got '\(text)'") }
    return value
}

/// Runs `body` until it returns or SIGTERM/SIGINT cancels it; an error is printed as
/// `swerve COMMAND: …` and exits 1.
func runUntilTerminated(_ command: String, _ body: @escaping @Sendable () async throws -> Void) async throws {
    let task = Task { try await body() }
    let termination = handleTermination { task.cancel() }
    defer { termination.cancel() }
    do {
        try await task.value
    } catch {
        FileHandle.standardError.write(Data("swerve \(command): \(error)\n".utf8))
        throw ExitCode(1)
    }
}
