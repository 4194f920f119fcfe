import Foundation
import Glibc
import Logging
import SwerveCore
import SwerveProtocol
import SwerveRedis
import SwerveTestSupport
import Testing

/// A Redis that enforces the ACL file `swerve acl` wrote, and every process connecting as its
/// role: what each role's processes do works, and what no role needs is refused.
@Suite(.timeLimit(.minutes(1))) struct AccessControl: ClusterTest {
    let redis: RedisServerProcess
    let secrets: String
    let url: String
    let keys: ClusterKeys
    /// Connected as the `client` role: the test appends requests as `swerve apply` does.
    let client: RedisClient
    let logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }

    init() async throws {
        keys = try ClusterKeys(cluster: "acl\(UInt16.random(in: 0...UInt16.max))")
        let scratch = (ProcessInfo.processInfo.environment["SWERVE_TEST_TMPDIR"] ?? NSTemporaryDirectory()) + "/acl-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        // `swerve acl` runs as the test user (as every swerve process here), so its password
        // files are that user's, mode 0600.
        if let user = testUser { chown(scratch, user.uid, user.gid) }
        secrets = scratch + "/secrets"
        let (status, output) = try runSwerve(["acl", "--cluster", keys.cluster, "--secrets", secrets, "--output", scratch + "/users.acl"])
        guard status == 0 else { throw TestFailure("swerve acl failed: \(output)") }
        redis = try RedisServerProcess(extraArguments: ["--aclfile", scratch + "/users.acl", "--appendonly", "yes", "--appendfsync", "always"])
        try await redis.start()
        url = redis.url
        client = RedisClient(configuration: try Self.configuration(redis, secrets, .client), logger: logger)
    }

    static func configuration(_ redis: RedisServerProcess, _ secrets: String, _ role: AccessRoles.Role) throws -> RedisConfiguration {
        let password = try String(contentsOfFile: secrets + "/" + role.rawValue, encoding: .utf8).trimmingCharacters(in: .newlines)
        return RedisConfiguration(endpoint: .tcp(host: "127.0.0.1", port: redis.port), username: "swerve-" + role.rawValue, password: password,
                                  reconnectBackoff: ReconnectBackoff(initial: .milliseconds(10), maximum: .milliseconds(50)))
    }

    /// The environment that makes a swerve process connect as `role`.
    func credentials(_ role: AccessRoles.Role) -> [String: String] {
        ["SWERVE_REDIS_USER": "swerve-" + role.rawValue, "SWERVE_REDIS_PASSWORD_FILE": secrets + "/" + role.rawValue]
    }

    func connection(_ role: AccessRoles.Role) throws -> RedisClient {
        RedisClient(configuration: try Self.configuration(redis, secrets, role), logger: logger)
    }

    @Test func aClusterWhoseProcessesEachHaveOnlyTheirRoleRunsFailsOverAndReplaces() async throws {
        defer { redis.kill() }
        let first = try controller("c1", environment: credentials(.controller))
        let second = try controller("c2", environment: credentials(.controller))
        let agent = try SwerveProcess(["node", "--redis", url, "--cluster", keys.cluster, "--id", "n1", "--cpu", "8"],
                                      environment: credentials(.node).merging([
                                          "SWERVE_LOG_LEVEL": "warning",
                                          "SWERVE_WORKER_REDIS_USER": "swerve-worker", "SWERVE_WORKER_REDIS_PASSWORD_FILE": secrets + "/worker",
                                      ]) { $1 })
        let router = try SwerveProcess(["router", "--redis", url, "--cluster", keys.cluster, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"],
                                       environment: credentials(.router).merging(["SWERVE_LOG_LEVEL": "warning"]) { $1 }, captureOutput: true)
        defer { first.kill(); second.kill(); agent.kill(SIGTERM); router.kill() }
        let listen = try #require(try await router.nextOutputLine().split(separator: " ").dropFirst().first.map(String.init))

        let create = Request.Operation.createBackend(tag: "api", config: BackendConfig(numReplicas: 2, routePrefix: "/api"),
                                                     replicaConfig: ReplicaConfig(workload: .builtin(name: "echo"), resources: Resources(cpu: 1)))
        #expect(try await request(create, goal: "g-create") == GoalOutcome(goal: "g-create"))
        let routed = try await routedReplicas()
        #expect(routed.count == 2)
        try await awaitServing(listen)

        // Workers connect as the worker role, and hold none of the agent's credentials.
        for tag in routed.keys {
            let pid = try #require(try await pid(tag))
            let environment = try String(contentsOfFile: "/proc/\(pid)/environ", encoding: .utf8).split(separator: "\0").map(String.init)
            #expect(environment.contains("SWERVE_REDIS_USER=swerve-worker"), "\(environment)")
            #expect(environment.contains("SWERVE_REDIS_PASSWORD_FILE=\(secrets)/worker"))
            #expect(!environment.contains { $0.hasPrefix("SWERVE_WORKER_REDIS") || $0.hasPrefix("SWERVE_REDIS_PASSWORD=") || $0.hasSuffix("/secrets/node") })
        }

        // A worker killed: its agent records the exit, the leader replaces it.
        let victim = try #require(routed.keys.sorted().first)
        kill(try #require(try await pid(victim)), SIGKILL)
        try await awaitRouted { !$0.keys.contains(victim) && $0.count == 2 }

        // The leader killed: the other controller takes the lease and goes on.
        let leader = try #require(try await leaderID())
        (leader == "c1" ? first : second).kill(SIGKILL)
        #expect(try await request(.updateBackendConfig(tag: "api", patch: BackendConfigPatch(numReplicas: 3)), goal: "g-scale") == GoalOutcome(goal: "g-scale"))
        #expect(try await leaderID() != leader)
        #expect(try await routedReplicas().count == 3)
        try await awaitServing(listen)

        // The agent's health check runs as the agent.
        let health = try runSwerve(["health", "node", "n1"], environment: credentials(.node).merging(["SWERVE_REDIS_URL": url, "SWERVE_CLUSTER": keys.cluster]) { $1 })
        #expect(health.status == 0, "\(health.output)")

        // The CLI: a reader reads; it may not submit, and says why; a client may.
        let reader = credentials(.reader).merging(["SWERVE_REDIS_URL": url, "SWERVE_CLUSTER": keys.cluster]) { $1 }
        let listed = try runSwerve(["get", "replicas"], environment: reader)
        #expect(listed.status == 0, "\(listed.output)")
        #expect(listed.output.contains("api#"))
        let refused = try runSwerve(["scale", "api", "1", "--no-wait"], environment: reader)
        #expect(refused.status != 0)
        #expect(refused.output.contains("NOPERM"), "\(refused.output)")
        let scaled = try runSwerve(["scale", "api", "1"], environment: credentials(.client).merging(["SWERVE_REDIS_URL": url, "SWERVE_CLUSTER": keys.cluster]) { $1 })
        #expect(scaled.status == 0, "\(scaled.output)")
    }

    /// The commands of the liveness protocol that a slow path would otherwise cover up (a worker
    /// refused its control re-read still stops, killed at its drain deadline), tried as each role.
    @Test func eachRoleMayDoWhatItsProcessesDo() async throws {
        defer { redis.kill() }
        let allowed: [AccessRoles.Role: [RedisCommand]] = [
            .worker: [RedisCommand("MGET", keys.drain("api#1"), keys.userConfig("api#1")),
                      RedisCommand("SET", keys.ready("api#1"), "{}", "NX"),
                      RedisCommand("SADD", keys.changedReplicas, "api#1"),
                      RedisCommand("DEL", keys.ready("api#1"))],
            .node: [RedisCommand("ZADD", keys.nodes, 1, "n1"),
                    RedisCommand("SADD", keys.changedNodes, "n1"),
                    RedisCommand("SADD", keys.changedReplicas, "api#1"),
                    RedisCommand("DEL", keys.ready("api#1")),
                    RedisCommand("TIME"),
                    RedisCommand("PUBLISH", keys.control("api#1"), "{}")],
            // A load report, as the router's LoadReporter writes it, and its demand wake-up.
            .router: [RedisCommand("MULTI"), RedisCommand("DEL", keys.routerLoad("r1")), RedisCommand("HSET", keys.routerLoad("r1"), "api", "3"),
                      RedisCommand("PEXPIRE", keys.routerLoad("r1"), 1000), RedisCommand("SADD", keys.routerLoads, "r1"), RedisCommand("EXEC"),
                      RedisCommand("PUBLISH", keys.wake, "{}"),
                      // A traffic report, as its TrafficReporter writes it.
                      RedisCommand("MULTI"), RedisCommand("SET", keys.routerTraffic("r1"), "{}", "PX", 10000),
                      RedisCommand("ZADD", keys.routerTraffics, 10005, "r1"), RedisCommand("ZREMRANGEBYSCORE", keys.routerTraffics, "-inf", 5),
                      RedisCommand("EXEC")],
            // The dashboard's reads: traffic reports and the events stream.
            .reader: [RedisCommand("TIME"), RedisCommand("ZRANGE", keys.nodes, 0, -1, "WITHSCORES"),
                      RedisCommand("ZREVRANGEBYSCORE", keys.routerTraffics, "+inf", "-inf", "LIMIT", 0, 1000), RedisCommand("MGET", keys.routerTraffic("r1")),
                      RedisCommand("XREVRANGE", keys.events, "+", "-", "COUNT", 1)],
        ]
        for (role, commands) in allowed {
            let connection = try connection(role)
            for command in commands {
                let reply = try await connection.pipeline([command])[0]
                #expect(reply.errorMessage == nil, "\(role) may \(command.name): it got \(reply)")
            }
        }
    }

    /// What must never be possible, role by role, tried against the real server.
    @Test func eachRoleIsRefusedWhatItMustNotDo() async throws {
        defer { redis.kill() }
        let admin = try connection(.admin)
        #expect(try await admin.send("SET", keys.lease, "c1:1").string == "OK")
        #expect(try await admin.send("SET", keys.checkpoint, "{}").string == "OK")

        let everyRoleForbidden: [RedisCommand] = [
            RedisCommand("FLUSHALL"),
            RedisCommand("CONFIG", "SET", "appendonly", "no"),
            RedisCommand("ACL", "LIST"),
            RedisCommand("REPLICAOF", "NO", "ONE"),
            RedisCommand("SWAPDB", "0", "1"),
            RedisCommand("KEYS", "*"),
            RedisCommand("GET", "swerve:{other}:checkpoint"),
        ]
        // Only the controller takes the lease and hands out epochs.
        let leadership = [RedisCommand("SET", keys.lease, "intruder:9"), RedisCommand("INCR", keys.epoch)]
        let forbidden: [AccessRoles.Role: [RedisCommand]] = [
            .node: [RedisCommand("HSET", keys.assignments("n1"), "api#1", #"{"command":["sh","-c","id"]}"#),
                    RedisCommand("INCR", keys.assignmentsVersion("n1")),
                    RedisCommand("SET", keys.routingSnapshot, "{}"),
                    RedisCommand("GET", keys.checkpoint),
                    RedisCommand("XRANGE", keys.requests, "-", "+"),
                    RedisCommand("SET", keys.ready("api#1"), "{}"),
                    RedisCommand("SET", keys.drain("api#1"), "{}"),
                    RedisCommand("PUBLISH", keys.snapshots, "{}")],
            .worker: [RedisCommand("HSET", keys.assignments("n1"), "api#1", "{}"),
                      RedisCommand("SET", keys.routingSnapshot, "{}"),
                      RedisCommand("GET", keys.checkpoint),
                      RedisCommand("SET", keys.node("n1"), "{}"),
                      RedisCommand("SET", keys.exit("api#1"), "{}"),
                      RedisCommand("SET", keys.drain("api#1"), "{}"),
                      RedisCommand("XADD", keys.requests, "*", "goal", "g")],
            .router: [RedisCommand("SET", keys.routingSnapshot, "{}"),
                      RedisCommand("GET", keys.checkpoint),
                      RedisCommand("HGETALL", keys.assignments("n1")),
                      RedisCommand("XADD", keys.requests, "*", "goal", "g"),
                      RedisCommand("PUBLISH", keys.snapshots, "{}"),
                      RedisCommand("HSET", keys.status, "api", "3"),
                      RedisCommand("SADD", keys.changedReplicas, "api#1"),
                      RedisCommand("DEL", keys.ready("api#1")),
                      RedisCommand("SET", keys.status, "{}"),
                      RedisCommand("ZADD", keys.nodes, 1, "n1")],
            .client: [RedisCommand("SET", keys.checkpoint, "{}"),
                      RedisCommand("SET", keys.goal("g"), "{}"),
                      RedisCommand("XDEL", keys.requests, "0-1"),
                      RedisCommand("HSET", keys.assignments("n1"), "api#1", "{}")],
            .reader: [RedisCommand("XADD", keys.requests, "*", "goal", "g"),
                      RedisCommand("HSET", keys.cordons, "n1", "{}"),
                      RedisCommand("PUBLISH", keys.wake, "{}"),
                      RedisCommand("DEL", keys.status),
                      RedisCommand("SET", keys.routerTraffic("r1"), "{}")],
            .controller: [RedisCommand("SET", "swerve:{other}:lease", "c1:1"),
                          RedisCommand("SHUTDOWN", "NOSAVE")],
        ]
        for (role, commands) in forbidden {
            let connection = try connection(role)
            for command in commands + everyRoleForbidden + (role == .controller ? [] : leadership) {
                let reply = try await connection.pipeline([command])[0]
                #expect(reply.errorMessage?.hasPrefix("NOPERM") == true, "\(role) may not \(command.name) \(command.arguments.dropFirst().first.map { String(decoding: $0, as: UTF8.self) } ?? ""): it got \(reply)")
            }
        }
        // Nothing changed: the lease and the checkpoint are the admin's writes.
        #expect(try await admin.send("GET", keys.lease).string == "c1:1")
        #expect(try await admin.send("GET", keys.checkpoint).string == "{}")

        // A connection that does not authenticate can do nothing.
        let anonymous = RedisClient(configuration: RedisConfiguration(endpoint: .tcp(host: "127.0.0.1", port: redis.port)), logger: logger)
        await #expect(throws: RedisError.self) { try await anonymous.send("GET", keys.lease) }
    }

    /// Redis replays its append-only file as `default`, re-checking each `EXEC`'s permissions
    /// (redis/redis#14541): had `default` no rights, every script's writes — each fenced step,
    /// the checkpoint — would silently vanish on restart.
    @Test func aRestartFromTheAppendOnlyFileKeepsWhatScriptsWrote() async throws {
        defer { redis.kill() }
        let controller = try connection(.controller)
        let script = RedisScript("redis.call('SET', KEYS[1], ARGV[1]) redis.call('SET', KEYS[2], ARGV[1]) return 1")
        #expect(try await controller.send(script.command(keys: [keys.checkpoint, keys.checkpointEpoch], arguments: ["7"])).integer == 1)
        redis.kill()
        try await redis.start()
        let reopened = try connection(.controller)
        #expect(try await reopened.send("MGET", keys.checkpoint, keys.checkpointEpoch).array?.map(\.string) == ["7", "7"])
        // And a connection that does not authenticate is still refused.
        let anonymous = RedisClient(configuration: RedisConfiguration(endpoint: .tcp(host: "127.0.0.1", port: redis.port)), logger: logger)
        await #expect(throws: RedisError.self) { try await anonymous.send("GET", keys.checkpoint) }
    }

    /// Returns once the routed replicas satisfy `condition` (10 s at most).
    func awaitRouted(_ condition: ([String: String]) -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while !condition(try await routedReplicas()) {
            guard ContinuousClock.now < deadline else { throw TestFailure("routing never showed what was awaited: \(try await routedReplicas())") }
            try await Task.sleep(for: .milliseconds(50))
        }
    }
}
