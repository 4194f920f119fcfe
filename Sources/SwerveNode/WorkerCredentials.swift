public import SwerveRedis
public import SwerveErrors

/// The Redis credentials a node agent hands its workers instead of its own: the `worker`
/// role's user and password file (see `swerve acl`), from the agent's
/// `SWERVE_WORKER_REDIS_USER` and `SWERVE_WORKER_REDIS_PASSWORD_FILE`.
///
/// Guarantees: with them, a worker's environment holds none of the agent's credentials —
/// `SWERVE_REDIS_USER`, `SWERVE_REDIS_PASSWORD` and `SWERVE_REDIS_PASSWORD_FILE` are replaced
/// and the `SWERVE_WORKER_REDIS_*` variables removed — and an agent whose URL carries a user
/// or password (which every worker would inherit) refuses to start. Without them, workers
/// run with the agent's credentials, as before ACLs.
public struct WorkerCredentials: Sendable, Hashable {
    public static let userVariable = "SWERVE_WORKER_REDIS_USER"
    public static let passwordFileVariable = "SWERVE_WORKER_REDIS_PASSWORD_FILE"

    public var user: String
    /// A file the worker reads its password from (never the password itself: the agent does
    /// not put it into any environment).
    public var passwordFile: String

    public init(user: String, passwordFile: String) {
        self.user = user
        self.passwordFile = passwordFile
    }

    /// The workers' credentials the agent's `environment` names; nil when it names none.
    /// - Throws: when only one of the two variables is set, the password file cannot be read
    ///   or is empty (`readFile`, injected for tests), or `redisURL` holds credentials.
    public static func from(environment: [String: String], redisURL: String,
                            readFile: (String) throws -> [UInt8] = RedisConfiguration.readWholeFile) throws(NodeError) -> WorkerCredentials? {
        let user = environment[userVariable].flatMap { $0.isEmpty ? nil : $0 }
        let file = environment[passwordFileVariable].flatMap { $0.isEmpty ? nil : $0 }
        switch (user, file) {
        case (nil, nil):
            return nil
        case (let user?, let file?):
            let fromURL: RedisConfiguration
            do { fromURL = try RedisConfiguration(url: redisURL) } catch { throw NodeError(.invalidConfiguration, "--redis: \(error.message)") }
            if fromURL.username != nil || fromURL.password != nil {
                throw NodeError(.invalidConfiguration, "--redis: the URL holds credentials, which every worker would inherit; with \(userVariable) set, give the agent's own in \(RedisConfiguration.userVariable) and \(RedisConfiguration.passwordFileVariable)")
            }
            // Read now, so that a wrong path stops the agent, not every worker it starts.
            let password: [UInt8]
            do { password = try readFile(file) } catch { throw NodeError(.invalidConfiguration, "\(passwordFileVariable): cannot read \(file): \(error)") }
            guard password.contains(where: { $0 != UInt8(ascii: "\n") && $0 != UInt8(ascii: "\r") }) else {
                throw NodeError(.invalidConfiguration, "\(passwordFileVariable): the password file \(file) is empty")
            }
            return WorkerCredentials(user: user, passwordFile: file)
        case (_?, nil):
            throw NodeError(.invalidConfiguration, "\(userVariable) is set but \(passwordFileVariable) is not: set both, or neither")
        case (nil, _?):
            throw NodeError(.invalidConfiguration, "\(passwordFileVariable) is set but \(userVariable) is not: set both, or neither")
        }
    }

    /// `agent`'s environment as a worker must inherit it: these credentials, not the agent's.
    public func workerEnvironment(from agent: [String: String]) -> [String: String] {
        var environment = agent
        for name in [RedisConfiguration.userVariable, RedisConfiguration.passwordVariable, RedisConfiguration.passwordFileVariable, Self.userVariable, Self.passwordFileVariable] {
            environment[name] = nil
        }
        environment[RedisConfiguration.userVariable] = user
        environment[RedisConfiguration.passwordFileVariable] = passwordFile
        return environment
    }
}
