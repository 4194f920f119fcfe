import ArgumentParser
import Foundation
import Glibc
import Logging
import SwerveClient
import SwerveCore
import SwerveLauncher
import SwerveProtocol
import SwerveRedis
import SwerveSystem
import Synchronization

/// `swerve-ops up`: a whole cluster on loopback — an embedded Redis (or `--redis`), 3
/// controllers, 2 node agents, a router, the dashboard — with the example backends applied;
/// shows their URLs, the leader and a live status until Ctrl-C, then stops everything it started.
/// A process that dies meanwhile (a crash, or `ops/chaos` attached to this cluster) is started
/// again, as docker-compose's restart policy would.
struct UpCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "up", abstract: "Start a local cluster and show its status until Ctrl-C.",
        discussion: """
            ops/up builds Swerve and runs this. Logs go to DIR/logs, the embedded Redis keeps its
            data (AOF on) in DIR/redis, so a second `up` finds the backends where they were.

            Examples:
              swerve-ops up --swerve .build/release/swerve
              swerve-ops up --swerve .build/release/swerve --redis redis://10.0.0.5:6379 --cluster staging
            """)

    @Option(help: "The swerve binary to run.") var swerve: String
    @Option(help: "An existing Redis to use instead of starting one.") var redis: String?
    @Option(help: "The cluster name.") var cluster = "local"
    @Option(help: "Where logs and the embedded Redis's data go.") var directory = ".swerve"
    @Option(help: "The router's port (another free one if it is taken).") var routerPort = 8000
    @Option(help: "The dashboard's port (another free one if it is taken).") var dashboardPort = 8080
    @Option(help: "A spec file to apply once the cluster is up (empty: none).") var apply = "examples/backends.yaml"
    @Option(help: "Controllers to run.") var controllers = 3
    @Option(help: "Node agents to run.") var nodes = 2
    @Flag(help: "Run Redis highly available: a master, two replicas and three Sentinels; every process connects through the sentinels.")
    var ha = false

    func validate() throws {
        if ha, redis != nil { throw ValidationError("--ha starts its own Redis: drop --redis, or drop --ha to use yours") }
    }

    func run() async throws {
        var settings = LocalCluster.Settings(swerve: swerve, directory: directory, cluster: cluster, redisURL: redis)
        settings.logLevel = ProcessInfo.processInfo.environment["SWERVE_LOG_LEVEL"] ?? "info"
        settings.highlyAvailable = ha
        let cluster = try LocalCluster(settings: settings)
        // Ctrl-C and SIGTERM both end the run: stop what was started, nothing else.
        let (stops, stop) = AsyncStream.makeStream(of: Void.self)
        let termination = handleTermination { stop.yield() }
        defer { termination.cancel() }

        let restarts = RestartLog()
        let supervisor = cluster.supervise { name in restarts.add(name) }
        defer { supervisor.cancel() }
        let failed = Atomic<Bool>(false)
        let shown = Task {
            do {
                try await start(cluster, restarts: restarts)
            } catch is CancellationError {
                // Ctrl-C while starting or showing: the run ends below.
            } catch {
                FileHandle.standardError.write(Data("swerve-ops up: \(error)\n".utf8))
                failed.store(true, ordering: .relaxed)
                stop.yield()
            }
        }
        for await _ in stops { break }
        shown.cancel()
        print("\nstopping \(cluster.running.count) processes…")
        cluster.stopAll()
        print("stopped; logs in \(cluster.logDirectory)")
        if failed.load(ordering: .relaxed) { throw ExitCode(1) }
    }

    private func start(_ cluster: LocalCluster, restarts: RestartLog) async throws {
        try await cluster.startRedis()
        for index in 1...max(1, controllers) { try cluster.startController("controller-\(index)") }
        for index in 1...max(1, nodes) { try cluster.startNode("node-\(index)") }
        let listen = "127.0.0.1:\(try freeLoopbackPort(preferred: routerPort))"
        let admin = "127.0.0.1:\(try freeLoopbackPort(preferred: routerPort == 0 ? 0 : routerPort + 1))"
        try cluster.startRouter("router-1", listen: listen, admin: admin)
        let dashboard = "127.0.0.1:\(try freeLoopbackPort(preferred: dashboardPort))"
        try cluster.startDashboard("dashboard", listen: dashboard)

        let logger = Logger(label: "swerve-ops") { _ in SwiftLogNoOpLogHandler() }
        let redis = RedisClient(configuration: try cluster.redisConfiguration(), logger: logger)
        defer { redis.close() }
        let client = ClusterClient(keys: cluster.keys, client: redis, logger: logger)
        let mode = ha ? "highly available: a master, 2 replicas, 3 sentinels, ACLs; " : self.redis == nil ? "single server; " : "yours"
        print("redis:   \(cluster.redisURL) (\(mode)" + (self.redis == nil ? "data in \(cluster.redisDirectory), AOF on)" : ")"))
        print("router:  http://\(listen)   (routes: http://\(admin)/-/routes, metrics: http://\(admin)/metrics)")
        print("dashboard: http://\(dashboard)/   (live: leader, backends, replicas, nodes, events)")
        print("logs:    \(cluster.logDirectory)")
        print("cli:     export SWERVE_REDIS_URL=\(cluster.redisURL) SWERVE_CLUSTER=\(cluster.keys.cluster)")
        if cluster.accessControlled {
            // The client role submits and reads; `swerve acl`'s other users are for the services.
            let client = cluster.credentials(.client)
            print("         export " + client.keys.sorted().map { "\($0)=\(client[$0]!)" }.joined(separator: " "))
            print("acl:     a Redis user per role (\(cluster.aclFile)); passwords in \(cluster.secretsDirectory)")
        }
        if !apply.isEmpty {
            let text = try String(contentsOfFile: apply, encoding: .utf8)
            for spec in try BackendSpec.parse(text, source: apply) {
                let goal = try await client.submit(spec.operation)
                let outcome = try await client.wait(for: goal, backend: spec.operation.backendTag, leaderless: .seconds(30)) { _ in }
                print("applied: \(spec.operation.backendTag) from \(apply)" + (outcome.failure.map { " — failed: \($0)" } ?? ""))
            }
        }
        print("ready:   curl http://\(listen)/hello   ·   Ctrl-C stops every process started here")
        fflush(nil) // all streams: stdout without naming the global
        try await showStatus(ClusterView(client: client), restarts: restarts)
    }

    /// Redraws the status in place on a terminal; elsewhere prints it whenever it changes.
    private func showStatus(_ view: ClusterView, restarts: RestartLog) async throws {
        let terminal = isatty(STDOUT_FILENO) == 1
        var shown: [String] = []
        while !Task.isCancelled {
            let lines = await view.statusLines() + restarts.lines
            if lines != shown {
                if terminal, !shown.isEmpty { print("\u{1B}[\(shown.count)F\u{1B}[J", terminator: "") }
                print(lines.joined(separator: "\n"))
                if !terminal { print("") }
                fflush(nil) // all streams: stdout without naming the global
                shown = lines
            }
            try await Task.sleep(for: .milliseconds(500))
        }
    }
}

/// The last few restarts the supervisor made, shown under the live status.
final class RestartLog: Sendable {
    private let recent = Mutex<[String]>([])

    func add(_ name: String) {
        let time = Date().formatted(date: .omitted, time: .standard)
        recent.withLock { $0 = Array(($0 + ["\(time) restarted \(name) (it had exited)"]).suffix(3)) }
    }

    var lines: [String] { recent.withLock { $0 } }
}
