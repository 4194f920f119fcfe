import Foundation
public import SwerveProtocol
public import SwerveRedis
import Logging

/// A cluster of its own for one test, on the throwaway Redis `ops/test` started: a unique
/// cluster name (so tests share the server without seeing each other's keys) and a client.
public enum TestCluster {
    public static func make(prefix: String) throws -> (url: String, keys: ClusterKeys, client: RedisClient) {
        guard let url = ProcessInfo.processInfo.environment["SWERVE_TEST_REDIS_URL"] else {
            throw TestFailure("SWERVE_TEST_REDIS_URL is not set: run the tests with ops/test, which starts a throwaway redis-server")
        }
        let keys = try ClusterKeys(cluster: "\(prefix)\(UInt32.random(in: 0...UInt32.max))")
        let client = RedisClient(configuration: try RedisConfiguration(url: url), logger: Logger(label: "test") { _ in SwiftLogNoOpLogHandler() })
        return (url, keys, client)
    }
}
