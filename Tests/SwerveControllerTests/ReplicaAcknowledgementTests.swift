import Foundation
import Glibc
import Logging
@testable import SwerveController
import SwerveCore
import SwerveProtocol
import SwerveRedis
import SwerveTestSupport
import Testing

@Suite struct ReplicaAcknowledgementRules {
    @Test func aStepRecordsFirstAndActsAfter() {
        var ledger = CheckpointLedger()
        var routing = RoutingPublisher()
        let keys = try! ClusterKeys(cluster: "t")
        let replica = ReplicaReference(tag: "api#1", backend: "api", node: "n1")
        let writes = StepWrites([.writeCheckpoint(BackendState()), .drain(replica, deadline: 5), .completeGoal("g")],
                                status: [:], appliedRequest: true, events: [EventEntry(epoch: 1, controller: "c", at: Timestamp(milliseconds: 1), event: ClusterEvent(kind: .goalCompleted, backend: "api", message: "done"))],
                                epoch: 1, keys: keys, checkpoints: &ledger, routing: &routing)
        let (record, act) = ReplicaAcknowledgement.split(writes.calls)
        #expect(record.map(\.name) == ["writeCheckpoint", "writeStatus", "appendEvents"])
        #expect(act.map(\.name) == ["drain", "settleGoal"])
        #expect(ReplicaAcknowledgement.split([]).act.isEmpty)
    }

    @Test func tooFewAcknowledgementsStopTheStepBeforeItActs() throws {
        let acknowledgement = ReplicaAcknowledgement(configured: 1, timeout: .milliseconds(100))
        #expect(acknowledgement.command.name == "WAIT")
        try acknowledgement.check(.integer(1))
        try acknowledgement.check(.integer(2))
        #expect(throws: ReplicaAcknowledgementError.self) { try acknowledgement.check(.integer(0)) }
        #expect(throws: ReplicaAcknowledgementError.self) { try acknowledgement.check(nil) }
    }

    @Test func configuredAcknowledgementsAreKeptAndAutoStartsAtNone() {
        #expect(ReplicaAcknowledgement(configured: 2, timeout: .milliseconds(100)).required == 2)
        #expect(ReplicaAcknowledgement(configured: nil, timeout: .milliseconds(100)).required == 0, "until a load asks the master")
    }
}

/// A master with one replica: a leader acts on a step only once the replica holds its checkpoint.
@Suite(.timeLimit(.minutes(1))) struct ReplicaAcknowledgements: ClusterTest {
    let master: RedisServerProcess
    let replica: RedisServerProcess
    let url: String
    let keys: ClusterKeys
    let client: RedisClient
    let logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }

    init() async throws {
        master = try RedisServerProcess()
        try await master.start()
        replica = try RedisServerProcess(extraArguments: ["--replicaof", "127.0.0.1", "\(master.port)"])
        try await replica.start()
        url = master.url
        keys = try ClusterKeys(cluster: "acks")
        client = RedisClient(configuration: try RedisConfiguration(url: url), logger: logger)
    }

    @Test func aStepWhoseCheckpointNoReplicaHoldsDoesNotAct() async throws {
        // The master lists its replica: auto means 1 acknowledgement.
        let deadline = ContinuousClock.now + .seconds(10)
        while try await client.send("WAIT", 1, 100).integer != 1 {
            guard ContinuousClock.now < deadline else { throw TestFailure("the replica never connected") }
        }
        let leader = try controller("c1")
        let agent = try node()
        defer { leader.kill(); agent.kill(SIGTERM) }
        let create = Request.Operation.createBackend(tag: "api", config: BackendConfig(numReplicas: 1, routePrefix: "/api"),
                                                     replicaConfig: ReplicaConfig(workload: .builtin(name: "echo"), resources: Resources(cpu: 1)))
        #expect(try await request(create, goal: "g-create") == GoalOutcome(goal: "g-create"))

        // Frozen, the replica acknowledges nothing (the master still counts it as connected).
        replica.signal(SIGSTOP)
        try await append(.updateBackendConfig(tag: "api", patch: BackendConfigPatch(numReplicas: 2)), goal: "g-scale")
        // The leader applies it and writes the checkpoint, but acts on nothing: no second
        // assignment, no goal outcome. Watched for a second (absence has no event to await).
        try await poll("the checkpoint that applied the scale") {
            try await checkpoint().backend("api")?.config.numReplicas == 2
        }
        let watchUntil = ContinuousClock.now + .seconds(1)
        while ContinuousClock.now < watchUntil {
            #expect(try await client.send("HLEN", keys.assignments("n1")).integer == 1, "an assignment was written before the replica held the checkpoint")
            #expect(try await client.send("EXISTS", keys.goal("g-scale")).integer == 0, "the goal was announced before the replica held the checkpoint")
            try await Task.sleep(for: .milliseconds(50))
        }
        // Thawed, it catches up: the step acts.
        replica.signal(SIGCONT)
        #expect(try await outcome(of: "g-scale") == GoalOutcome(goal: "g-scale"))
        #expect(try await client.send("HLEN", keys.assignments("n1")).integer == 2)
    }
}
