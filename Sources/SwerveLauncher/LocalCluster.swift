import Foundation
import Glibc
public import SwerveProtocol
public import SwerveRedis
import SwerveSystem
import Synchronization
import Logging

/// A whole Swerve cluster on loopback, as child processes: an embedded `redis-server` (or an
/// existing Redis), controllers, node agents and routers — what `ops/up`, `ops/chaos` and the
/// benchmarks run.
///
/// Guarantees: every process it starts leads its own process group (a Ctrl-C meant for the
/// launcher does not reach them; ``stopAll(timeout:)`` stops them in order: routers, then
/// controllers, then node agents — which drain their workers — then Redis), and it signals
/// only processes it started and has not yet reaped. Under ``supervise(onRestart:)`` a member
/// that exits without being asked is started again, as a container's restart policy would.
/// Logs go to `logs/NAME.log` under the directory; the embedded Redis keeps its data (AOF on)
/// in `redis/`.
public final class LocalCluster: Sendable {
    public struct Settings: Sendable {
        /// The `swerve` binary.
        public var swerve: String
        /// Where logs and the embedded Redis's data go.
        public var directory: String
        public var cluster: String
        /// An existing Redis; nil starts an embedded one.
        public var redisURL: String?
        /// Passed to controllers as `--lease-ttl-ms` when set.
        public var leaseTTLMs: Int?
        /// CPUs each node agent offers.
        public var nodeCPU: Double = 8
        /// The log level of every process (`SWERVE_LOG_LEVEL`).
        public var logLevel = "info"
        /// Run the embedded Redis highly available: a master, two replicas and three Sentinels
        /// (quorum 2), every member given the `redis-sentinel://` URL, with the ACL users of
        /// `swerve acl`: each member connects as its role (see ``accessControlled``).
        public var highlyAvailable = false
        /// Members that run inside a network namespace (by name): they reach the embedded
        /// Redis at the namespace's host address, which it binds too, so cutting the namespace
        /// cuts them off (``ops/chaos``'s partitions).
        public var namespaces: [String: NetworkNamespace] = [:]

        public init(swerve: String, directory: String, cluster: String, redisURL: String? = nil, leaseTTLMs: Int? = nil) {
            self.swerve = swerve
            self.directory = directory
            self.cluster = cluster
            self.redisURL = redisURL
            self.leaseTTLMs = leaseTTLMs
        }
    }

    /// A process the launcher started.
    public struct Member: Sendable, Hashable {
        public enum Role: String, Sendable, Hashable { case redis, controller, node, router, dashboard }
        public var name: String
        public var role: Role
        public var pid: Int32
        public var executable: String
        public var arguments: [String]
    }

    public let settings: Settings
    public let keys: ClusterKeys
    /// Every member started, including ones that exited and were not yet started again.
    private let members = Mutex<[String: Member]>([:])
    /// Members being stopped on purpose (never restarted), or all of them once `stopAll` ran.
    private let stopping = Mutex<(names: Set<String>, all: Bool)>(([], false))
    private let embeddedRedis = Mutex<(port: Int, url: String)?>(nil)
    /// Members the supervisor leaves down until ``release(_:)`` (a fault that must last).
    private let held = Mutex<Set<String>>([])

    public init(settings: Settings) throws {
        var settings = settings
        // Absolute: Redis changes into its data directory, and members read files named here.
        if !settings.directory.hasPrefix("/") { settings.directory = FileManager.default.currentDirectoryPath + "/" + settings.directory }
        self.settings = settings
        keys = try ClusterKeys(cluster: settings.cluster)
        try FileManager.default.createDirectory(atPath: "\(settings.directory)/logs", withIntermediateDirectories: true)
    }

    /// The Redis every member uses.
    public var redisURL: String {
        settings.redisURL ?? embeddedRedis.withLock { $0?.url } ?? "redis://127.0.0.1:6379"
    }

    /// The Sentinel master name in ``Settings/highlyAvailable`` mode.
    public static let sentinelMaster = "swerve"

    public var logDirectory: String { "\(settings.directory)/logs" }

    /// Where the embedded Redis keeps its data.
    public var redisDirectory: String { "\(settings.directory)/redis" }

    // MARK: Starting

    /// Starts the embedded `redis-server` (AOF on, data in ``redisDirectory``) on `port` (a free
    /// one when nil) and waits until it answers. Does nothing when an existing Redis is used.
    public func startRedis(port: Int? = nil) async throws {
        guard settings.redisURL == nil else { return }
        try FileManager.default.createDirectory(atPath: redisDirectory, withIntermediateDirectories: true)
        if settings.highlyAvailable {
            try await startHighlyAvailableRedis()
            return
        }
        let chosen = try port ?? embeddedRedis.withLock { $0?.port } ?? freeLoopbackPort()
        let url = "redis://127.0.0.1:\(chosen)"
        embeddedRedis.withLock { $0 = (chosen, url) }
        let addresses = ["127.0.0.1"] + settings.namespaces.values.map(\.hostAddress).sorted()
        // Protected mode refuses every address but loopback: the namespaces' are the cluster's own.
        try start("redis", role: .redis, executable: "redis-server", arguments: [
            "--port", "\(chosen)", "--bind", addresses.joined(separator: " "), "--dir", redisDirectory, "--appendonly", "yes",
            "--appendfsync", "everysec", "--save", "", "--daemonize", "no",
        ] + (settings.namespaces.isEmpty ? [] : ["--protected-mode", "no"]))
        try await awaitRedis()
    }

    /// A master (`redis`), two replicas (`redis-replica-N`) and three Sentinels (`sentinel-N`),
    /// each with its data or state under ``redisDirectory``, enforcing `swerve acl`'s users;
    /// returns once the sentinels see both replicas and a client through them gets an answer.
    /// The supervisor restarts each like any member: a master that comes back is turned into a
    /// replica by the sentinels.
    private func startHighlyAvailableRedis() async throws {
        let master = try freeLoopbackPort()
        let replicas = try [freeLoopbackPort(), freeLoopbackPort()]
        let sentinels = try [freeLoopbackPort(), freeLoopbackPort(), freeLoopbackPort()]
        let url = "redis-sentinel://" + sentinels.map { "127.0.0.1:\($0)" }.joined(separator: ",") + "#\(Self.sentinelMaster)"
        embeddedRedis.withLock { $0 = (master, url) }
        try writeAccessControl()
        let roles = AccessRoles(keys: keys)
        // Passwords go in configuration files (mode 0600), never on a command line.
        let serverConfig = "\(redisDirectory)/server.conf"
        try writePrivately(serverConfig, """
            aclfile \(aclFile)
            masteruser \(roles.user(.replication))
            masterauth \(try password(.replication))

            """)
        func server(_ name: String, _ port: Int, _ extra: [String]) throws {
            let directory = "\(redisDirectory)/\(name)"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            try start(name, role: .redis, executable: "redis-server", arguments: [serverConfig,
                "--port", "\(port)", "--bind", "127.0.0.1", "--dir", directory, "--appendonly", "yes",
                "--appendfsync", "everysec", "--save", "", "--daemonize", "no",
                // An old master cut off from its replicas refuses writes (no split brain).
                "--min-replicas-to-write", "1", "--min-replicas-max-lag", "10",
            ] + extra)
        }
        try server("redis", master, [])
        for (index, port) in replicas.enumerated() { try server("redis-replica-\(index + 1)", port, ["--replicaof", "127.0.0.1", "\(master)"]) }
        for (index, port) in sentinels.enumerated() {
            let config = "\(redisDirectory)/sentinel-\(index + 1).conf"
            try writePrivately(config, """
                sentinel monitor \(Self.sentinelMaster) 127.0.0.1 \(master) 2
                sentinel down-after-milliseconds \(Self.sentinelMaster) 1000
                sentinel failover-timeout \(Self.sentinelMaster) 5000
                sentinel parallel-syncs \(Self.sentinelMaster) 1
                sentinel auth-user \(Self.sentinelMaster) \(roles.user(.sentinel))
                sentinel auth-pass \(Self.sentinelMaster) \(try password(.sentinel))
                sentinel sentinel-user \(roles.user(.sentinel))
                sentinel sentinel-pass \(try password(.sentinel))
                \(try String(contentsOfFile: sentinelUsersFile, encoding: .utf8))
                """)
            try start("sentinel-\(index + 1)", role: .redis, executable: "redis-server",
                      arguments: [config, "--sentinel", "--port", "\(port)", "--bind", "127.0.0.1"])
        }
        try await awaitRedis()
        // The master takes writes only with a replica in sync (min-replicas-to-write): wait for
        // both, so that no member starts against a master that refuses it.
        let logger = Logger(label: "swerve.launcher") { _ in SwiftLogNoOpLogHandler() }
        let deadline = ContinuousClock.now + .seconds(20)
        var direct = try redisConfiguration()
        direct.endpoint = .tcp(host: "127.0.0.1", port: master)
        let masterClient = RedisClient(configuration: direct, logger: logger)
        defer { masterClient.close() }
        while (try? await masterClient.send("WAIT", replicas.count, 100))?.integer != Int64(replicas.count) {
            guard ContinuousClock.now < deadline else { throw LauncherError("the replicas did not sync with the master within 20 s; see \(logDirectory)/redis-replica-*.log") }
            try await Task.sleep(for: .milliseconds(50))
        }
        // The sentinels learn the replicas from the master within a second or so: a failover
        // before that would have nothing to promote.
        for port in sentinels {
            direct.endpoint = .tcp(host: "127.0.0.1", port: port)
            let client = RedisClient(configuration: direct, logger: logger)
            defer { client.close() }
            while (try? await client.send("SENTINEL", "replicas", Self.sentinelMaster))?.array?.count != replicas.count {
                guard ContinuousClock.now < deadline else { throw LauncherError("the sentinels did not see both replicas within 20 s; see \(logDirectory)/sentinel-*.log") }
                try await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    /// Stops the embedded Redis (SIGTERM: it finishes its AOF) and starts it again on the same
    /// port and data: what a restart in production looks like.
    public func restartRedis() async throws {
        guard settings.redisURL == nil else { return }
        guard !settings.highlyAvailable else { throw LauncherError("restartRedis: a highly available Redis fails over instead; signal its master") }
        stop("redis", timeout: .seconds(10))
        try await startRedis()
    }

    // MARK: Access control

    /// Whether the embedded Redis enforces the ACL users of `swerve acl` (in
    /// ``Settings/highlyAvailable`` mode): then controllers, node agents (and their workers)
    /// and routers each connect as their role, and the launcher as the admin user.
    public var accessControlled: Bool { settings.highlyAvailable && settings.redisURL == nil }

    /// The password files of `swerve acl`, one per role.
    public var secretsDirectory: String { "\(settings.directory)/secrets" }

    /// The ACL file the embedded servers load.
    public var aclFile: String { "\(redisDirectory)/users.acl" }

    /// The sentinels' users, written into each one's configuration file.
    private var sentinelUsersFile: String { "\(redisDirectory)/sentinel-users.conf" }

    /// The environment that makes a Swerve process connect as `role` (empty when not
    /// ``accessControlled``).
    public func credentials(_ role: AccessRoles.Role) -> [String: String] {
        guard accessControlled else { return [:] }
        var environment = ["SWERVE_REDIS_USER": AccessRoles(keys: keys).user(role), "SWERVE_REDIS_PASSWORD_FILE": "\(secretsDirectory)/\(role.rawValue)",
                           "SWERVE_SENTINEL_USER": AccessRoles(keys: keys).user(.discovery), "SWERVE_SENTINEL_PASSWORD_FILE": "\(secretsDirectory)/discovery"]
        if role == .node {
            environment["SWERVE_WORKER_REDIS_USER"] = AccessRoles(keys: keys).user(.worker)
            environment["SWERVE_WORKER_REDIS_PASSWORD_FILE"] = "\(secretsDirectory)/worker"
        }
        return environment
    }

    /// How the launcher and the harnesses around it connect: as the admin user when
    /// ``accessControlled``.
    public func redisConfiguration() throws -> RedisConfiguration {
        var configuration = try RedisConfiguration(url: redisURL, environment: ProcessInfo.processInfo.environment)
        if accessControlled {
            configuration.username = AccessRoles(keys: keys).user(.admin)
            configuration.password = try password(.admin)
            if case .sentinel(var sentinels) = configuration.endpoint {
                sentinels.username = AccessRoles(keys: keys).user(.admin)
                sentinels.password = configuration.password
                configuration.endpoint = .sentinel(sentinels)
            }
        }
        return configuration
    }

    /// Runs `swerve acl`: the ACL file and the password files (kept from an earlier run).
    private func writeAccessControl() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: settings.swerve)
        process.arguments = ["acl", "--cluster", settings.cluster, "--secrets", secretsDirectory, "--output", aclFile, "--sentinel-output", sentinelUsersFile]
        let log = "\(logDirectory)/acl.log"
        guard FileManager.default.createFile(atPath: log, contents: nil), let output = FileHandle(forWritingAtPath: log) else {
            throw LauncherError("cannot write \(log)")
        }
        defer { try? output.close() }
        process.standardOutput = output
        process.standardError = output
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw LauncherError("swerve acl failed; see \(log)") }
    }

    private func password(_ role: AccessRoles.Role) throws -> String {
        let text = try String(contentsOfFile: "\(secretsDirectory)/\(role.rawValue)", encoding: .utf8)
        return text.trimmingCharacters(in: .newlines)
    }

    /// Writes `text` to `path` readable by its owner alone.
    private func writePrivately(_ path: String, _ text: String) throws {
        guard FileManager.default.createFile(atPath: path, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600]) else {
            throw LauncherError("cannot write \(path)")
        }
        chmod(path, 0o600)
    }

    /// Starts a controller; inside its namespace when ``Settings/namespaces`` names one.
    public func startController(_ id: String, extra: [String] = []) throws {
        var arguments = ["controller"] + clusterArguments(for: id) + ["--id", id]
        if let ttl = settings.leaseTTLMs { arguments += ["--lease-ttl-ms", "\(ttl)"] }
        if let namespace = settings.namespaces[id] {
            let command = namespace.commandPrefix + [settings.swerve] + arguments + extra
            try start(id, role: .controller, executable: command[0], arguments: Array(command.dropFirst()))
        } else {
            try start(id, role: .controller, executable: settings.swerve, arguments: arguments + extra)
        }
    }

    public func startNode(_ id: String) throws {
        try start(id, role: .node, executable: settings.swerve,
                  arguments: ["node"] + clusterArguments + ["--id", id, "--cpu", "\(settings.nodeCPU)"])
    }

    /// Starts a router on `listen` with its admin port on `admin` (both `host:port`).
    public func startRouter(_ id: String, listen: String, admin: String) throws {
        try start(id, role: .router, executable: settings.swerve,
                  arguments: ["router"] + clusterArguments + ["--listen", listen, "--admin", admin])
    }

    /// Starts a dashboard on `listen` (`host:port`), as the read-only reader where ACLs are on.
    public func startDashboard(_ id: String, listen: String) throws {
        try start(id, role: .dashboard, executable: settings.swerve, arguments: ["dashboard"] + clusterArguments + ["--listen", listen])
    }

    private var clusterArguments: [String] { clusterArguments(for: "") }

    /// `--redis` (at the namespace's host address for a member in one) and `--cluster`.
    private func clusterArguments(for name: String) -> [String] {
        guard let namespace = settings.namespaces[name], settings.redisURL == nil,
              let port = embeddedRedis.withLock({ $0?.port }) else { return ["--redis", redisURL, "--cluster", settings.cluster] }
        return ["--redis", "redis://\(namespace.hostAddress):\(port)", "--cluster", settings.cluster]
    }

    private func start(_ name: String, role: Member.Role, executable: String, arguments: [String]) throws {
        var environment = ProcessInfo.processInfo.environment
        environment["SWERVE_LOG_LEVEL"] = settings.logLevel
        switch role {
        case .controller: environment.merge(credentials(.controller)) { $1 }
        case .node: environment.merge(credentials(.node)) { $1 }
        case .router: environment.merge(credentials(.router)) { $1 }
        case .dashboard: environment.merge(credentials(.reader)) { $1 }
        case .redis: break
        }
        let pid: Int32
        switch spawnProcess(executable: executable, arguments: arguments, environment: environment, newProcessGroup: true,
                            outputPath: "\(logDirectory)/\(name).log") {
        case .success(let started): pid = started
        case .failure(let error): throw LauncherError("cannot start \(name): \(error.message)")
        }
        members.withLock { $0[name] = Member(name: name, role: role, pid: pid, executable: executable, arguments: arguments) }
    }

    // MARK: Supervision

    /// Starts again, with the same command line, every member that exits without having been
    /// asked to (at most once a second each), calling `onRestart` with its name; until the
    /// returned task is cancelled or ``stopAll(timeout:)`` runs.
    public func supervise(onRestart: @escaping @Sendable (String) -> Void) -> Task<Void, Never> {
        Task {
            var lastRestart: [String: ContinuousClock.Instant] = [:]
            while !Task.isCancelled {
                let exited = members.withLock { $0.values.filter { Self.reaped($0.pid) } }
                for member in exited {
                    let (named, all) = stopping.withLock { ($0.names.contains(member.name), $0.all) }
                    guard !named, !all, !held.withLock({ $0.contains(member.name) }) else { continue }
                    // Stopped on purpose and forgotten since the list was taken (`stop` removes
                    // the member before it drops the name): not ours to start again.
                    guard members.withLock({ $0[member.name]?.pid == member.pid }) else { continue }
                    if let last = lastRestart[member.name], ContinuousClock.now - last < .seconds(1) { continue }
                    lastRestart[member.name] = .now
                    if (try? start(member.name, role: member.role, executable: member.executable, arguments: member.arguments)) != nil {
                        onRestart(member.name)
                    }
                }
                try? await Task.sleep(for: .milliseconds(50))
            }
        }
    }

    // MARK: Watching and signalling

    /// The members started and not yet exited.
    public var running: [Member] {
        members.withLock { members in members.values.filter { !Self.reaped($0.pid) }.sorted { $0.name < $1.name } }
    }

    public func pid(_ name: String) -> Int32? { running.first { $0.name == name }?.pid }

    /// Sends `signal` to `name` if it is still running; returns whether it was.
    @discardableResult
    public func signal(_ name: String, _ signal: Int32) -> Bool {
        guard let pid = pid(name) else { return false }
        return kill(pid, signal) == 0
    }

    /// SIGTERM, then SIGKILL after `timeout`; returns once it was reaped.
    public func stop(_ name: String, timeout: Duration) {
        guard let member = members.withLock({ $0[name] }) else { return }
        stop([member], timeout: timeout)
    }

    /// Keeps `name` down once it exits, whoever ends it, until ``release(_:)``: the supervisor
    /// does not start it again meanwhile.
    public func hold(_ name: String) { held.withLock { _ = $0.insert(name) } }

    /// Ends a ``hold(_:)``: the supervisor starts `name` again if it is down.
    public func release(_ name: String) { held.withLock { _ = $0.remove(name) } }

    /// The member whose process is `pid`, if it is one of ours and running.
    public func member(pid: Int32) -> Member? { running.first { $0.pid == pid } }

    /// Waits until the process now running as `name` exits (after a signal someone else sent).
    public func awaitExit(_ name: String) async {
        guard let pid = pid(name) else { return }
        while !Self.reaped(pid) { try? await Task.sleep(for: .milliseconds(10)) }
    }

    /// Stops every member in order — dashboards and routers, controllers, node agents (they
    /// drain their workers), Redis — each SIGTERM first and SIGKILL after `timeout`.
    public func stopAll(timeout: Duration = .seconds(10)) {
        stopping.withLock { $0.all = true }
        let all = members.withLock { $0.values }
        for role in [Member.Role.dashboard, .router, .controller, .node, .redis] {
            stop(all.filter { $0.role == role }, timeout: timeout)
        }
    }

    private func stop(_ group: [Member], timeout: Duration) {
        stopping.withLock { $0.names.formUnion(group.map(\.name)) }
        defer { stopping.withLock { $0.names.subtract(group.map(\.name)) } }
        for member in group where !Self.reaped(member.pid) {
            kill(member.pid, SIGCONT) // a stopped process cannot act on SIGTERM
            kill(member.pid, SIGTERM)
        }
        let deadline = ContinuousClock.now + timeout
        for member in group {
            while !Self.reaped(member.pid) {
                if ContinuousClock.now > deadline { kill(-member.pid, SIGKILL); kill(member.pid, SIGKILL) }
                usleep(10_000)
            }
        }
        members.withLock { members in for member in group { members[member.name] = nil } }
    }

    /// Whether `pid` (a child) exited; reaps it. A pid that is no child of ours counts as gone.
    private static func reaped(_ pid: Int32) -> Bool {
        var status: Int32 = 0
        let result = waitpid(pid, &status, WNOHANG)
        return result == pid || (result == -1 && errno == ECHILD)
    }

    private func awaitRedis() async throws {
        let logger = Logger(label: "swerve.launcher") { _ in SwiftLogNoOpLogHandler() }
        let client = RedisClient(configuration: try redisConfiguration(), logger: logger)
        defer { client.close() }
        let deadline = ContinuousClock.now + .seconds(15)
        while ContinuousClock.now < deadline {
            if (try? await client.send("PING"))?.string == "PONG" { return }
            if pid("redis") == nil { throw LauncherError("redis-server exited at start; see \(logDirectory)/redis.log") }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw LauncherError("redis-server did not answer within 15 s; see \(logDirectory)/redis.log")
    }
}

/// Why the launcher could not do what it was asked.
public struct LauncherError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
