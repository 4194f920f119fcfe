import Synchronization
import SwerveErrors

/// Asks Redis Sentinels where their master is (`SENTINEL get-master-addr-by-name`), on the
/// calling (dedicated) thread: it blocks.
///
/// Guarantees: sentinels are asked one at a time, starting with the last one that answered (a
/// sentinel that is down costs its connect timeout once, not on every reconnect); the first
/// answer wins; when none answers, the error names each sentinel and why. A sentinel that
/// answers "no such master" is an error of its own (a wrong name in the URL), not a reason to
/// ask the next one.
enum SentinelDiscovery {
    /// The index of the sentinel that answered last, per sentinel set.
    private static let lastAnswered = Mutex<[RedisSentinels: Int]>([:])

    /// The master's address, as the sentinels know it now.
    static func master(of sentinels: RedisSentinels, configuration: RedisConfiguration) throws(RedisError) -> RedisEndpoint {
        guard !sentinels.addresses.isEmpty else { throw RedisError(.invalidConfiguration, "no sentinel to ask for master \"\(sentinels.master)\"") }
        let start = lastAnswered.withLock { $0[sentinels] } ?? 0
        var failures: [String] = []
        for offset in 0..<sentinels.addresses.count {
            let index = (start + offset) % sentinels.addresses.count
            let address = sentinels.addresses[index]
            let sentinelConfiguration = RedisConfiguration(
                endpoint: .tcp(host: address.host, port: address.port), username: sentinels.username, password: sentinels.password,
                connectTimeout: configuration.connectTimeout, commandTimeout: configuration.connectTimeout)
            let reply: RedisReply
            do throws(RedisError) {
                let connection = try HiredisConnection.open(sentinelConfiguration)
                let (replies, error) = connection.execute([RedisCommand("SENTINEL", "get-master-addr-by-name", sentinels.master)])
                if let error { throw error }
                reply = replies.first ?? .null
            } catch {
                failures.append("\(sentinelConfiguration.endpoint): \(error.message)")
                continue
            }
            if let message = reply.errorMessage {
                failures.append("\(sentinelConfiguration.endpoint): \(message)")
                continue
            }
            guard let parts = reply.array, parts.count == 2, let host = parts[0].string, let port = parts[1].string.flatMap({ Int($0) }) else {
                throw RedisError(.connectFailed, "sentinel \(sentinelConfiguration.endpoint) knows no master named \"\(sentinels.master)\": check the name after # in the URL")
            }
            lastAnswered.withLock { $0[sentinels] = index }
            return .tcp(host: host, port: port)
        }
        throw RedisError(.connectFailed, "no sentinel told where master \"\(sentinels.master)\" is: " + failures.joined(separator: "; "))
    }
}
