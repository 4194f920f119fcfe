import Foundation
import Glibc
import Logging
import SwerveCore
import SwerveProtocol
import SwerveRedis
import SwerveTestSupport
import Testing

/// A Redis of the test's own loses every key while the cluster runs (what a restart without
/// persistence, or from a lost disk, looks like): no worker is stopped for it, and no controller
/// reconciles from nothing.
@Suite(.timeLimit(.minutes(1))) struct RedisDataLoss: ClusterTest {
    let server: RedisServerProcess
    let url: String
    let keys: ClusterKeys
    let client: RedisClient
    let logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }

    init() async throws {
        server = try RedisServerProcess()
        try await server.start()
        url = server.url
        keys = try ClusterKeys(cluster: "loss")
        client = RedisClient(configuration: try RedisConfiguration(url: url), logger: logger)
    }

    @Test func everyKeyLostStopsNoWorkerAndNoControllerStartsFromNothing() async throws {
        let leader = try controller("c1", environment: ["SWERVE_LOG_LEVEL": "info"])
        let agent = try SwerveProcess(["node", "--redis", url, "--cluster", keys.cluster, "--id", "n1", "--cpu", "8"], environment: ["SWERVE_LOG_LEVEL": "info"])
        let create = Request.Operation.createBackend(tag: "api", config: BackendConfig(numReplicas: 2, routePrefix: "/api"),
                                                     replicaConfig: ReplicaConfig(workload: .builtin(name: "echo"), resources: Resources(cpu: 1)))
        #expect(try await request(create, goal: "g-create") == GoalOutcome(goal: "g-create"))
        let routed = try await routedReplicas()
        var pids: [String: Int32] = [:]
        for tag in routed.keys { pids[tag] = try await pid(tag) }
        #expect(pids.count == 2)

        try await client.send("FLUSHALL")
        // The workers write their ready keys again; the leader lost its lease with everything
        // else, takes it again, finds no checkpoint though it wrote one before, and refuses.
        for tag in pids.keys {
            let deadline = ContinuousClock.now + .seconds(10)
            while try await client.send("EXISTS", keys.ready(tag)).integer != 1 {
                guard ContinuousClock.now < deadline else { throw TestFailure("\(tag) never reported ready again") }
                try await Task.sleep(for: .milliseconds(50))
            }
        }
        // Watched for three seconds (absence has no event): no checkpoint from nothing, no
        // worker stopped, every replica still answering.
        let watchUntil = ContinuousClock.now + .seconds(3)
        while ContinuousClock.now < watchUntil {
            #expect(try await client.send("EXISTS", keys.checkpoint).integer == 0, "a controller reconciled from nothing")
            try await Task.sleep(for: .milliseconds(100))
        }
        for (tag, pid) in pids {
            #expect(kill(pid, 0) == 0, "\(tag)'s worker was stopped")
            #expect(try await httpRequest(try #require(routed[tag])).status == 200)
        }
        leader.kill(SIGTERM)
        let (_, controllerLog) = await leader.exit()
        // Its evidence: the checkpoint it wrote, or the replicas that report ready again by then.
        #expect(controllerLog.contains("refusing to lead and releasing the lease: Redis holds no checkpoint, but"), "\(controllerLog)")

        // A controller that never saw the cluster (all of them were restarted too) has only
        // Redis to go by: the replicas reporting ready are its evidence.
        let newcomer = try controller("c2", environment: ["SWERVE_LOG_LEVEL": "info"])
        let refusedBy = ContinuousClock.now + .seconds(10)
        while !(newcomer.stderrSoFar.contains("Redis holds no checkpoint, but replicas report ready")) {
            guard ContinuousClock.now < refusedBy else { throw TestFailure("c2 did not refuse: \(newcomer.stderrSoFar)") }
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(try await client.send("EXISTS", keys.checkpoint).integer == 0)
        for (tag, pid) in pids { #expect(kill(pid, 0) == 0, "\(tag)'s worker was stopped") }
        newcomer.kill(SIGTERM)
        agent.kill(SIGTERM)
        _ = await newcomer.exit()
        let (_, nodeLog) = await agent.exit()
        #expect(nodeLog.contains("the assignments' version went back: Redis lost writes"), "\(nodeLog)")
    }

    /// Redis restarted from a snapshot taken before the last changes (a lost AOF tail, a restore
    /// from last night's file): the replica started since is unknown to the restored state, yet
    /// kept by its node; the next leader's epoch exceeds every one before the loss; routers
    /// follow; and the cluster takes requests again.
    @Test func redisRestoredFromAnOlderFileStopsNoWorkerAndCarriesOn() async throws {
        let leader = try controller("c1")
        let agent = try node()
        let router = try SwerveProcess(["router", "--redis", url, "--cluster", keys.cluster, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"],
                                       environment: ["SWERVE_LOG_LEVEL": "warning"], captureOutput: true)
        defer { leader.kill(); agent.kill(SIGTERM); router.kill() }
        let listen = try #require(try await router.nextOutputLine().split(separator: " ").dropFirst().first.map(String.init))
        let create = Request.Operation.createBackend(tag: "api", config: BackendConfig(numReplicas: 1, routePrefix: "/api"),
                                                     replicaConfig: ReplicaConfig(workload: .builtin(name: "echo"), resources: Resources(cpu: 1)))
        #expect(try await request(create, goal: "g-create") == GoalOutcome(goal: "g-create"))
        let before = try #require(try await leaderEpoch())

        // The backup; then a change it will not hold.
        #expect(try await client.send("SAVE").string == "OK")
        let backup = server.directory + "/backup.rdb"
        try FileManager.default.copyItem(atPath: server.directory + "/dump.rdb", toPath: backup)
        #expect(try await request(.updateBackendConfig(tag: "api", patch: BackendConfigPatch(numReplicas: 2)), goal: "g-scale") == GoalOutcome(goal: "g-scale"))
        var pids: [String: Int32] = [:]
        for tag in try await routedReplicas().keys { pids[tag] = try await pid(tag) }
        #expect(pids.count == 2)

        // Down for longer than the lease (as a restore takes), then restored from the backup:
        // the lease it holds has expired, so a leader is elected on the restored data.
        server.kill()
        try FileManager.default.removeItem(atPath: server.directory + "/dump.rdb")
        try FileManager.default.copyItem(atPath: backup, toPath: server.directory + "/dump.rdb")
        try await Task.sleep(for: .seconds(2))
        try await server.start()

        // Control comes back under a higher epoch, and takes a request.
        #expect(try await request(.updateBackendConfig(tag: "api", patch: BackendConfigPatch(numReplicas: 1)), goal: "g-after") == GoalOutcome(goal: "g-after"))
        #expect(try #require(try await leaderEpoch()) > before, "the epoch went back with the data")
        // No worker was stopped for the loss (the one the backup does not know is kept).
        for (tag, pid) in pids { #expect(kill(pid, 0) == 0, "\(tag)'s worker was stopped") }
        // The router serves from the new leader's snapshots.
        try await awaitServing(listen)
        // The agent says why it keeps the worker once it reads again (its reconnect backoff
        // may end after everything above).
        let noticedBy = ContinuousClock.now + .seconds(10)
        while !agent.stderrSoFar.contains("the assignments' version went back: Redis lost writes"), ContinuousClock.now < noticedBy {
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(agent.stderrSoFar.contains("the assignments' version went back: Redis lost writes"), "\(agent.stderrSoFar)")
    }

    func leaderEpoch() async throws -> Int64? {
        guard let bytes = try await client.send("GET", keys.leader).bytes else { return nil }
        return try DocumentCodec.decode(LeaderRecord.self, from: bytes, source: keys.leader).epoch
    }
}
