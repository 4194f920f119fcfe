import Foundation
import Glibc
import SwerveController
import SwerveCore
import SwerveProtocol
import SwerveRedis
import SwerveSystem
import SwerveTestSupport
import Testing

/// A leader crashes (or fails a step) exactly between two of its writes; the cluster must end
/// where it ends without the crash, with every request applied exactly once.
extension ControllerProcesses {
    static let crashPlans: [String?] = [
        nil,
        "controller.after-request=crash",          // the create applied and checkpointed; nothing published or assigned
        "controller.after-checkpoint=crash",       // the same step, reached as "any checkpoint"
        "controller.after-assign=crash",           // the create's replicas assigned; not yet routed
        "controller.before-goal-outcomes=crash",   // the create converged and was routed; its goal not announced
        "controller.after-request=crash@2",        // the scale applied; its replica not yet assigned
        "controller.after-assign=crash@2",         // the scale's replica assigned
    ]

    @Test(arguments: crashPlans)
    func aCrashBetweenTwoWritesEndsWhereNoCrashEnds(_ plan: String?) async throws {
        let armed = try SwerveProcess(["controller", "--redis", url, "--cluster", keys.cluster, "--id", "c1"],
                                      environment: ["SWERVE_LOG_LEVEL": "warning", "SWERVE_LEASE_TTL_MS": "2000", Failpoints.environmentVariable: plan ?? ""])
        try await awaitLeader("c1")
        let spare = try controller("c2")
        let agent = try node()
        defer { armed.kill(); spare.kill(); agent.kill(SIGTERM) }

        try await applyTheScript()

        if let plan {
            armed.kill(SIGKILL) // no-op when it crashed, as it should have
            let (status, stderr) = await armed.exit()
            let point = String(plan.prefix(while: { $0 != "=" }))
            #expect(status == SIGKILL && stderr.contains("failpoint \(point) fired (crash"), "it crashed at the point:\n\(stderr)")
        } else {
            let leader = try await leaderID()
            #expect(leader == "c1", "no crash, no failover; c1 said:\n\(armed.stderrSoFar)\nc2 said:\n\(spare.stderrSoFar)")
        }
        try await expectTheScriptsEndState()
    }

    /// `error` instead of `crash`: the step fails after its checkpoint; the leader reloads the
    /// checkpoint, repeats what may be missing, and goes on leading in the same term.
    @Test func aStepThatFailsPartWayIsResumedFromTheCheckpointInTheSameTerm() async throws {
        let leader = try SwerveProcess(["controller", "--redis", url, "--cluster", keys.cluster, "--id", "c1"],
                                       environment: ["SWERVE_LOG_LEVEL": "warning", Failpoints.environmentVariable: "controller.after-checkpoint=error@2"])
        try await awaitLeader("c1")
        let agent = try node()
        defer { leader.kill(); agent.kill(SIGTERM) }
        let epoch = try await client.send("GET", keys.epoch).integer

        try await applyTheScript()
        try await expectTheScriptsEndState()
        let epochNow = try await client.send("GET", keys.epoch).integer
        #expect(try await leaderID() == "c1" && epochNow == epoch, "one term throughout")
        leader.kill(SIGTERM)
        let (_, stderr) = await leader.exit()
        #expect(stderr.contains("failpoint controller.after-checkpoint fired (error, hit 2)"))
        #expect(stderr.contains("control loop step failed; reloading the checkpoint"), "\(stderr)")
    }

    /// Create 2 echo replicas, scale to 3, change the user config; each awaited.
    func applyTheScript() async throws {
        let create = Request.Operation.createBackend(tag: "api", config: BackendConfig(numReplicas: 2, routePrefix: "/api"),
                                                     replicaConfig: ReplicaConfig(workload: .builtin(name: "echo"), resources: Resources(cpu: 1)))
        #expect(try await request(create, goal: "g-create") == GoalOutcome(goal: "g-create"))
        #expect(try await request(.updateBackendConfig(tag: "api", patch: BackendConfigPatch(numReplicas: 3)), goal: "g-scale") == GoalOutcome(goal: "g-scale"))
        let userConfig = BackendConfigPatch(userConfig: .set(.object(["greeting": .string("hi")])))
        #expect(try await request(.updateBackendConfig(tag: "api", patch: userConfig), goal: "g-config") == GoalOutcome(goal: "g-config"))
    }

    /// Three running replicas at the current config, routed and answering; three requests
    /// applied, the last one last; one assignment per replica (nothing started twice).
    func expectTheScriptsEndState() async throws {
        let state = try await checkpoint()
        let lastRequest = try #require(try await client.send("XREVRANGE", keys.requests, "+", "-", "COUNT", 1).array?.first?.array?.first?.string)
        #expect(state.requestsApplied == 3, "each request applied exactly once")
        #expect(state.lastAppliedRequest?.description == lastRequest)
        let backend = try #require(state.backends.first { $0.tag == "api" })
        #expect(backend.config.numReplicas == 3 && backend.config.userConfig == .object(["greeting": .string("hi")]))
        let running = backend.replicas.filter { $0.state == .running }
        #expect(running.count == 3 && backend.replicas.count == 3, "\(backend.replicas.map { "\($0.tag) \($0.state)" })")
        #expect(running.allSatisfy { $0.userConfigVersion == backend.userConfigVersion })
        let routed = try await routedReplicas()
        #expect(Set(routed.keys) == Set(running.map(\.tag)))
        for address in routed.values { #expect(try await httpRequest(address).status == 200) }
        #expect(try await client.send("HLEN", keys.assignments("n1")) == .integer(3))
    }
}

extension ControllerProcesses {
    /// A leader that loads the checkpoint announces its recent goal outcomes again; the status
    /// it writes from that checkpoint must already be there when they arrive (a step that
    /// failed part-way may have written the checkpoint but not the status after it — here the
    /// status is made stale by hand).
    @Test func recoveryWritesTheStatusBeforeItAnnouncesGoalsAgain() async throws {
        let first = try controller("c1")
        let agent = try node()
        defer { first.kill(); agent.kill(SIGTERM) }
        #expect(try await request(.createBackend(tag: "api", config: BackendConfig(numReplicas: 1),
                                                 replicaConfig: ReplicaConfig(workload: .builtin(name: "echo"), resources: Resources(cpu: 1))), goal: "g-1") == GoalOutcome(goal: "g-1"))
        first.kill(SIGKILL)
        _ = await first.exit()
        try await client.send("SET", keys.status, #"{"backends":{"api":{"kind":"updating","reason":"0/1 running, 1 starting","running":0,"target":1}},"schemaVersion":1}"#)

        let subscriber = RedisSubscriber(configuration: client.configuration, logger: logger)
        let statusWhenAnnounced: BackendStatus? = try await subscriber.subscribe(to: [keys.goals]) { subscription in
            var iterator = subscription.makeAsyncIterator()
            #expect(await iterator.next() == .subscribed)
            let second = try controller("c2")
            defer { second.kill() }
            while let event = await iterator.next() {
                guard case .message(let message) = event,
                      (try? DocumentCodec.decode(GoalOutcomeDocument.self, from: message.payload, source: keys.goals))?.goal == "g-1" else { continue }
                let bytes = try #require(try await client.send("GET", keys.status).bytes)
                return try DocumentCodec.decode(StatusDocument.self, from: bytes, source: keys.status).backends["api"]
            }
            return nil
        }
        #expect(statusWhenAnnounced?.kind == .healthy && statusWhenAnnounced?.running == 1, "\(String(describing: statusWhenAnnounced))")
    }
}

extension ControllerProcesses {
    /// A request that crashes every leader that applies it: each leader records its attempt
    /// first, so after three the next quarantines it (its goal says so) and the stream moves on;
    /// the requests around it are applied, each once.
    @Test func aRequestThatCrashesEveryLeaderIsQuarantinedAfterThreeAttempts() async throws {
        let echo = ReplicaConfig(workload: .builtin(name: "echo"), resources: Resources(cpu: 1))
        try await append(.createBackend(tag: "before", config: BackendConfig(numReplicas: 0), replicaConfig: echo), goal: "g-before")
        try await append(.createBackend(tag: "poison", config: BackendConfig(numReplicas: 0), replicaConfig: echo), goal: "g-poison")
        try await append(.createBackend(tag: "after", config: BackendConfig(numReplicas: 0), replicaConfig: echo), goal: "g-after")
        let environment = ["SWERVE_LEASE_TTL_MS": "400", Failpoints.environmentVariable: "controller.applying-request:g-poison=crash"]
        let controllers = try (1...5).map { try controller("c\($0)", environment: environment) }
        defer { for process in controllers { process.kill() } }

        let poisoned = try await outcome(of: "g-poison")
        #expect(poisoned.failure?.hasPrefix("quarantined after 3 attempts: leaders crashed or failed while applying request") == true, "\(poisoned)")
        #expect(try await outcome(of: "g-before").failure == nil)
        #expect(try await outcome(of: "g-after").failure == nil)
        var crashed = 0
        for process in controllers {
            process.kill(SIGKILL)
            let (_, stderr) = await process.exit()
            if stderr.contains("failpoint controller.applying-request:g-poison fired (crash") { crashed += 1 }
        }
        #expect(crashed == 4, "the batch's first attempt and three alone")
        let status = try await client.send("GET", keys.status).string ?? ""
        #expect(status.contains("\"before\"") && status.contains("\"after\"") && !status.contains("\"poison\""), "\(status)")
        #expect(try await client.send("EXISTS", keys.requestAttempt) == .integer(1))
    }
}
