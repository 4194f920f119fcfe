import Foundation
public import SwerveErrors

/// Where and how to connect to Redis. A plain `Sendable` value with defaults; build it from a
/// URL with ``init(url:environment:readFile:)``.
///
/// The password never needs to be on a command line: it may come from the URL, from
/// `SWERVE_REDIS_PASSWORD`, or from the file named by `SWERVE_REDIS_PASSWORD_FILE` (a
/// Docker or Kubernetes secret). ``description`` never shows it.
public struct RedisConfiguration: Sendable, Hashable, CustomStringConvertible {
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
    /// the environment names.
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
    }

    /// The password from `SWERVE_REDIS_PASSWORD` or `SWERVE_REDIS_PASSWORD_FILE`; an error if
    /// both are set or the file cannot be read.
    static func password(environment: [String: String], readFile: (String) throws -> [UInt8]) throws(RedisError) -> String? {
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

/// Where a Redis server listens.
public enum RedisEndpoint: Sendable, Hashable, CustomStringConvertible {
    case tcp(host: String, port: Int)
    case unix(path: String)

    public var description: String {
        switch self {
        case .tcp(let host, let port): return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        case .unix(let path): return "unix:\(path)"
        }
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
