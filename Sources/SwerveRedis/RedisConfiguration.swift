import FoundationEssentials
public import SwerveErrors

/// Where and how to connect to Redis. A plain `Sendable` value with defaults; build it from a
/// URL with ``init(url:environment:readFile:)``.
///
/// The password never needs to be on a command line: it may come from the URL, from
/// `SWERVE_REDIS_PASSWORD`, or from the file named by `SWERVE_REDIS_PASSWORD_FILE` (a
/// Docker or Kubernetes secret). ``description`` never shows it. The ACL user comes from the
/// URL, else from `SWERVE_REDIS_USER`.
public struct RedisConfiguration: Sendable, Hashable, CustomStringConvertible {
    /// The environment variable holding the ACL user (when the URL names none).
    public static let userVariable = "SWERVE_REDIS_USER"
    /// The environment variable holding the password.
    public static let passwordVariable = "SWERVE_REDIS_PASSWORD"
    /// The environment variable naming a file whose content (less a trailing newline) is the password.
    public static let passwordFileVariable = "SWERVE_REDIS_PASSWORD_FILE"

    public var endpoint: RedisEndpoint
    /// The ACL user for `AUTH user password`; nil sends `AUTH password` (the `default` user).
    public var username: String?
    public var password: String?
    /// The logical database to `SELECT` after connecting.
    public var database: Int
    /// How long establishing a connection (TCP or Unix connect) may take.
    public var connectTimeout: Duration
    /// How long a reply may take before the connection is declared dead.
    public var commandTimeout: Duration
    /// How reconnect attempts are spaced while the server is away.
    public var reconnectBackoff: ReconnectBackoff
    /// Sent as `CLIENT SETNAME` so `CLIENT LIST` says who is connected; nil sends nothing.
    public var clientName: String?
    /// With Sentinels: how often an open connection asks them again which server is the
    /// master, and reconnects when it moved (a failover while this client's old master still
    /// answers).
    public var masterCheckInterval: Duration = .seconds(1)

    public init(
        endpoint: RedisEndpoint = .tcp(host: "127.0.0.1", port: 6379),
        username: String? = nil,
        password: String? = nil,
        database: Int = 0,
        connectTimeout: Duration = .seconds(2),
        commandTimeout: Duration = .seconds(5),
        reconnectBackoff: ReconnectBackoff = ReconnectBackoff(),
        clientName: String? = nil
    ) {
        self.endpoint = endpoint
        self.username = username
        self.password = password
        self.database = database
        self.connectTimeout = connectTimeout
        self.commandTimeout = commandTimeout
        self.reconnectBackoff = reconnectBackoff
        self.clientName = clientName
    }

    /// Parses `redis://[user[:password]@]host[:port][/db]` or `unix:///path/to.sock[?db=N]`
    /// and takes the password from the URL, else from the environment, else from the file
    /// the environment names; the user from the URL, else from `SWERVE_REDIS_USER`.
    ///
    /// - Parameters:
    ///   - environment: the process environment (injected so tests need not change theirs).
    ///   - readFile: reads a file's bytes; injected for the same reason.
    public init(
        url: String,
        environment: [String: String] = [:],
        readFile: (String) throws -> [UInt8] = RedisConfiguration.readWholeFile
    ) throws(RedisError) {
        let parsed = try RedisURL.parse(url)
        self.init(endpoint: parsed.endpoint, username: parsed.username, password: parsed.password, database: parsed.database)
        if password == nil {
            password = try Self.password(environment: environment, readFile: readFile)
        }
        if username == nil {
            username = environment[Self.userVariable].flatMap { $0.isEmpty ? nil : $0 }
        }
        if let username, password == nil {
            // Without a password no AUTH is sent: the connection would silently be `default`'s.
            throw RedisError(.invalidConfiguration, "Redis user \"\(username)\" (from the URL or \(Self.userVariable)) has no password: set \(Self.passwordFileVariable) (or \(Self.passwordVariable), or put it in the URL)")
        }
        if case .sentinel(var sentinels) = endpoint {
            sentinels.username = environment[Self.sentinelUserVariable].flatMap { $0.isEmpty ? nil : $0 }
            sentinels.password = try Self.password(environment: environment, readFile: readFile,
                                                   variable: Self.sentinelPasswordVariable, fileVariable: Self.sentinelPasswordFileVariable)
            endpoint = .sentinel(sentinels)
        }
    }

    /// The environment variables for the Sentinels' own credentials.
    public static let sentinelUserVariable = "SWERVE_SENTINEL_USER"
    public static let sentinelPasswordVariable = "SWERVE_SENTINEL_PASSWORD"
    public static let sentinelPasswordFileVariable = "SWERVE_SENTINEL_PASSWORD_FILE"

    /// The password from `SWERVE_REDIS_PASSWORD` or `SWERVE_REDIS_PASSWORD_FILE`; an error if
    /// both are set or the file cannot be read.
    static func password(environment: [String: String], readFile: (String) throws -> [UInt8],
                         variable passwordVariable: String = Self.passwordVariable,
                         fileVariable passwordFileVariable: String = Self.passwordFileVariable) throws(RedisError) -> String? {
        let direct = environment[passwordVariable].flatMap { $0.isEmpty ? nil : $0 }
        let file = environment[passwordFileVariable].flatMap { $0.isEmpty ? nil : $0 }
        switch (direct, file) {
        case (nil, nil):
            return nil
        case (let password?, nil):
            return password
        case (nil, let path?):
            let bytes: [UInt8]
            do { bytes = try readFile(path) } catch {
                throw RedisError(.invalidConfiguration, "\(passwordFileVariable): cannot read the password file \(path): \(error)")
            }
            var text = String(decoding: bytes, as: UTF8.self)
            while text.hasSuffix("\n") || text.hasSuffix("\r") { text.removeLast() }
            if text.isEmpty {
                throw RedisError(.invalidConfiguration, "\(passwordFileVariable): the password file \(path) is empty")
            }
            return text
        case (_?, _?):
            throw RedisError(.invalidConfiguration, "set only one of \(passwordVariable) and \(passwordFileVariable), not both")
        }
    }

    /// Reads a whole file; the default for ``init(url:environment:readFile:)``.
    public static func readWholeFile(_ path: String) throws -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw RedisError(.invalidConfiguration, "no readable file at \(path)")
        }
        return Array(data)
    }

    /// The endpoint and user, never the password: safe for logs and error messages.
    public var description: String {
        var text = endpoint.description
        if let username { text = "\(username)@\(text)" }
        if database != 0 { text += "/\(database)" }
        if password != nil { text += " (with password)" }
        return text
    }
}

/// Where a Redis server listens, or which Sentinels know where the master is.
public enum RedisEndpoint: Sendable, Hashable, CustomStringConvertible {
    case tcp(host: String, port: Int)
    case unix(path: String)
    /// The master the sentinels name: asked for before every connection (and again while one
    /// is open, see ``RedisConfiguration/masterCheckInterval``).
    case sentinel(RedisSentinels)

    public var description: String {
        switch self {
        case .tcp(let host, let port): return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        case .unix(let path): return "unix:\(path)"
        case .sentinel(let sentinels): return sentinels.description
        }
    }
}

/// Redis Sentinels and the name of the master they watch (`redis-sentinel://…#MASTER`).
public struct RedisSentinels: Sendable, Hashable, CustomStringConvertible {
    public struct Address: Sendable, Hashable {
        public var host: String
        public var port: Int

        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }
    }

    public var addresses: [Address]
    public var master: String
    /// Sentinels' own ACL user and password (`SWERVE_SENTINEL_USER`, `SWERVE_SENTINEL_PASSWORD`
    /// or `SWERVE_SENTINEL_PASSWORD_FILE`); nil: they ask for none.
    public var username: String?
    public var password: String?

    public init(addresses: [Address], master: String, username: String? = nil, password: String? = nil) {
        self.addresses = addresses
        self.master = master
        self.username = username
        self.password = password
    }

    public var description: String {
        "master \"\(master)\" of sentinels " + addresses.map { RedisEndpoint.tcp(host: $0.host, port: $0.port).description }.joined(separator: ",")
    }
}

/// How reconnect attempts are spaced: the first at once, then `initial`, doubling up to
/// `maximum`, each shortened by up to `jitter` (a fraction) so that many clients that lost
/// the same server do not return in lockstep.
public struct ReconnectBackoff: Sendable, Hashable {
    public var initial: Duration
    public var maximum: Duration
    public var jitter: Double

    public init(initial: Duration = .milliseconds(50), maximum: Duration = .seconds(2), jitter: Double = 0.2) {
        precondition(initial > .zero && maximum >= initial, "ReconnectBackoff needs 0 < initial <= maximum")
        precondition((0..<1).contains(jitter), "ReconnectBackoff.jitter must be in 0..<1")
        self.initial = initial
        self.maximum = maximum
        self.jitter = jitter
    }

    /// The wait before the next attempt after `failures` consecutive failed attempts (≥ 1).
    /// - Parameter random: a value in 0...1, injected so the policy stays deterministic in tests.
    public func delay(afterFailures failures: Int, random: Double) -> Duration {
        precondition(failures >= 1)
        var delay = initial
        for _ in 1..<min(failures, 32) {
            delay = delay * 2
            if delay >= maximum { delay = maximum; break }
        }
        return delay * (1 - jitter * min(max(random, 0), 1))
    }
}
