import Foundation
import Logging
import SwerveRedis
import SwerveTestSupport
import Testing

/// What `ops/test` hands the tests: the shared throwaway Redis and a scratch directory.
enum TestEnvironment {
    /// The URL of the throwaway redis-server that `ops/test` started.
    static func sharedRedisURL() throws -> String {
        try #require(
            ProcessInfo.processInfo.environment["SWERVE_TEST_REDIS_URL"],
            "SWERVE_TEST_REDIS_URL is not set: run the tests with ops/test, which starts a throwaway redis-server"
        )
    }

    /// A directory for this run's own redis-servers; `ops/test` kills whatever runs under it.
    static var scratchDirectory: String {
        ProcessInfo.processInfo.environment["SWERVE_TEST_TMPDIR"] ?? NSTemporaryDirectory()
    }

    static let logger: Logger = {
        var logger = Logger(label: "swerve-test") { label in StreamLogHandler.standardError(label: label) }
        logger.logLevel = ProcessInfo.processInfo.environment["SWERVE_TEST_LOG"].flatMap(Logger.Level.init(rawValue:)) ?? .critical
        return logger
    }()

    /// A client for the shared server with short timeouts and backoff.
    static func sharedClient() throws -> RedisClient {
        var configuration = try RedisConfiguration(url: sharedRedisURL())
        configuration.commandTimeout = .seconds(5)
        return RedisClient(configuration: configuration, logger: logger)
    }

    /// A key prefix no other test uses, so tests can share one server and run in parallel.
    static func uniquePrefix(_ test: String = #function) -> String {
        "test:\(test.prefix(while: { $0 != "(" })):\(UUID().uuidString.prefix(8)):"
    }
}
