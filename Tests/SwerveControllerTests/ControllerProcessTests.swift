import Foundation
import Glibc
import Logging
import SwerveCore
import SwerveProtocol
import SwerveRedis
import SwerveTestSupport
import Testing

/// Real controllers, a real node and real workers.
@Suite(.timeLimit(.minutes(1))) struct ControllerProcesses: ClusterTest {
    let url: String
    let keys: ClusterKeys
    let client: RedisClient
    let logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }

    init() throws {
        (url, keys, client) = try TestCluster.make(prefix: "c")
    }

    @Test func aBackendComesUpAndSurvivesItsLeadersDeathWithoutARestart() async throws {
        let first = try controller("c1")
        let second = try controller("c2")
        let agent = try node()
        defer { first.kill(); second.kill(); agent.kill(SIGTERM) }

        let create = Request.Operation.createBackend(tag: "api", config: BackendConfig(numReplicas: 3, routePrefix: "/api"),
                                                     replicaConfig: ReplicaConfig(workload: .builtin(name: "echo"), resources: Resources(cpu: 1)))
        #expect(try await request(create, goal: "g-create") == GoalOutcome(goal: "g-create"))
        let routed = try await routedReplicas()
        let snapshotText = try await self.routed().map(\.tag).joined(separator: ",")
        let statusText = try await client.send("GET", keys.status).string ?? "none"
        #expect(routed.count == 3, "snapshot: \(snapshotText); status: \(statusText)")
        for address in routed.values {
            #expect(try await httpRequest(address).status == 200)
        }
        var pids: [String: Int32] = [:]
        for tag in routed.keys { pids[tag] = try await pid(tag) }

        // Kill whichever leads; the other takes over from the checkpoint.
        let leader = try DocumentCodec.decode(LeaderRecord.self, from: try #require(try await client.send("GET", keys.leader).bytes), source: keys.leader)
        (leader.id == "c1" ? first : second).kill(SIGKILL)
        let scaled = try await request(.updateBackendConfig(tag: "api", patch: BackendConfigPatch(numReplicas: 2)), goal: "g-scale")
        #expect(scaled == GoalOutcome(goal: "g-scale"))
        let newLeader = try DocumentCodec.decode(LeaderRecord.self, from: try #require(try await client.send("GET", keys.leader).bytes), source: keys.leader)
        #expect(newLeader.id != leader.id && newLeader.epoch > leader.epoch)
        let survivors = try await routedReplicas()
        #expect(survivors.count == 2)
        for tag in survivors.keys {
            #expect(try await pid(tag) == pids[tag], "\(tag) was adopted, not restarted")
        }
    }

    /// Ray Serve twice shipped a controller that, while recovering, broadcast an empty replica
    /// set and halted all traffic. Here the ready keys are gone when the new leader takes over
    /// (as after Redis lost them): it keeps the replicas until their workers re-confirm.
    @Test func aNewLeaderDoesNotDropReplicasItHasNotHeardFromYet() async throws {
        let first = try controller("c1")
        let agent = try node()
        defer { agent.kill(SIGTERM) }
        let create = Request.Operation.createBackend(tag: "api", config: BackendConfig(numReplicas: 3),
                                                     replicaConfig: ReplicaConfig(workload: .builtin(name: "echo"), resources: Resources(cpu: 1)))
        #expect(try await request(create, goal: "g-1") == GoalOutcome(goal: "g-1"))
        let before = try await routedReplicas()
        var pids: [String: Int32] = [:]
        for tag in before.keys { pids[tag] = try await pid(tag) }

        // The leader dies, and the workers pause until their ready keys expire.
        first.kill(SIGKILL)
        for pid in pids.values { kill(pid, SIGSTOP) }
        let paused = ContinuousClock.now
        while try await client.send(RedisCommand("EXISTS", arguments: before.keys.map(keys.ready))) != .integer(0), ContinuousClock.now - paused < .seconds(8) {
            try await Task.sleep(for: .milliseconds(100))
        }
        // A new leader takes over while nothing confirms the replicas; then they resume and do.
        let second = try controller("c2")
        defer { second.kill() }
        try await awaitLeader("c2")
        // Through the new leader while the workers are still paused: the adopted replicas count
        // as running (no news), so this settles without replacing anything.
        #expect(try await request(.updateBackendConfig(tag: "api", patch: BackendConfigPatch(maxConcurrentQueries: 7)), goal: "g-2") == GoalOutcome(goal: "g-2"))
        #expect(Set(try await routedReplicas().keys) == Set(before.keys), "still routed")
        for pid in pids.values { kill(pid, SIGCONT) }
        // The resumed workers re-write their ready keys within a heartbeat: the same processes.
        let resumed = ContinuousClock.now
        while try await client.send(RedisCommand("EXISTS", arguments: before.keys.map(keys.ready))) != .integer(Int64(before.count)), ContinuousClock.now - resumed < .seconds(5) {
            try await Task.sleep(for: .milliseconds(50))
        }
        for (tag, old) in pids { #expect(try await pid(tag) == old, "\(tag) kept, not replaced") }
    }

    /// A failover of Redis to a replica that lacked a node's last registration drops the node
    /// from the `nodes` set. A new leader that finds a node it knew alive missing from the set
    /// waits out its adoption grace instead of declaring its replicas dead.
    @Test func aNodeMissingFromTheSetAtATakeoverKeepsItsReplicas() async throws {
        let first = try controller("c1")
        let agent = try node()
        defer { agent.kill(SIGCONT); agent.kill(SIGTERM) }
        #expect(try await request(.createBackend(tag: "api", config: BackendConfig(numReplicas: 2),
                                                 replicaConfig: ReplicaConfig(workload: .builtin(name: "echo"), resources: Resources(cpu: 1))), goal: "g-1") == GoalOutcome(goal: "g-1"))
        var pids: [String: Int32] = [:]
        for tag in try await routedReplicas().keys { pids[tag] = try await pid(tag) }
        #expect(pids.count == 2)

        // The leader dies; the agent is paused (it would register again) and leaves the set.
        first.kill(SIGKILL)
        agent.kill(SIGSTOP)
        #expect(try await client.send("ZREM", keys.nodes, "n1").integer == 1)
        let second = try controller("c2")
        defer { second.kill() }
        try await awaitLeader("c2")
        // A request through the new leader settles: its steps ran, and within the grace.
        #expect(try await request(.updateBackendConfig(tag: "api", patch: BackendConfigPatch(maxConcurrentQueries: 7)), goal: "g-2") == GoalOutcome(goal: "g-2"))
        #expect(Set(try await routedReplicas().keys) == Set(pids.keys), "still routed")
        agent.kill(SIGCONT)
        // The agent registers again within a heartbeat: the same workers go on.
        let back = ContinuousClock.now
        while try await client.send("ZSCORE", keys.nodes, "n1") == .null, ContinuousClock.now - back < .seconds(5) {
            try await Task.sleep(for: .milliseconds(50))
        }
        for (tag, pid) in pids { #expect(kill(pid, 0) == 0, "\(tag)'s worker was kept") }
        #expect(Set(try await routedReplicas().keys) == Set(pids.keys))
    }

    @Test func aLeaderPausedPastItsLeaseWritesNothingWhenItWakesAndFollows() async throws {
        let first = try controller("c1")
        try await awaitLeader("c1")
        let second = try controller("c2")
        let agent = try node()
        defer { first.kill(); second.kill(); agent.kill(SIGTERM) }
        #expect(try await request(.createBackend(tag: "api", config: BackendConfig(numReplicas: 1),
                                                 replicaConfig: ReplicaConfig(workload: .builtin(name: "echo"), resources: Resources(cpu: 1))), goal: "g-1") == GoalOutcome(goal: "g-1"))
        let firstEpoch = try #require(try await client.send("GET", keys.checkpointEpoch).integer)

        first.kill(SIGSTOP)
        try await awaitLeader("c2")
        first.kill(SIGCONT)
        // Work through the new leader; meanwhile the old one wakes with an expired lease.
        #expect(try await request(.updateBackendConfig(tag: "api", patch: BackendConfigPatch(numReplicas: 2)), goal: "g-2") == GoalOutcome(goal: "g-2"))
        let epoch = try #require(try await client.send("GET", keys.checkpointEpoch).integer)
        #expect(epoch > firstEpoch, "the checkpoint was last written under the new epoch")
        let leader = try DocumentCodec.decode(LeaderRecord.self, from: try #require(try await client.send("GET", keys.leader).bytes), source: keys.leader)
        #expect(leader.id == "c2")
        first.kill(SIGTERM)
        let (_, stderr) = await first.exit()
        #expect(stderr.contains("stepped down"), "the woken leader noticed and stepped down:\n\(stderr)")
        #expect(try await client.send("GET", keys.checkpointEpoch).integer == epoch, "and never wrote after")
    }

    /// Ctrl-C (SIGINT) takes the same path as SIGTERM: the lease is released, not left to expire.
    @Test(arguments: [SIGTERM, SIGINT])
    func aLeaderStoppedWithSIGTERMOrSIGINTHandsOverWithoutWaitingOutTheLease(signal: Int32) async throws {
        // A long lease, so that a handover well within it can only be a release (the time c2
        // takes to start on a loaded machine stays far below it).
        let ttl = ["SWERVE_LEASE_TTL_MS": "6000"]
        let first = try controller("c1", environment: ttl)
        try await awaitLeader("c1")
        let second = try controller("c2", environment: ttl)
        defer { second.kill() }
        // c2 is a follower once its first acquire was refused: the lease names c1 meanwhile.
        let stopped = ContinuousClock.now
        try await awaitLeader("c2", after: { first.kill(signal) })
        #expect(ContinuousClock.now - stopped < .milliseconds(5000), "released and announced, not expired (TTL 6 s)")
        let (status, _) = await first.exit()
        #expect(status == 0)
    }

    /// Waits until `first` leads with its presence recorded (so a follower may take over from
    /// it) and `second`'s elector is subscribed (so it is polling for the lease).
    func awaitTakeoverReady(leader first: String, follower second: String) async throws {
        try await awaitLeader(first)
        while true {
            let presence = try await client.send("GET", keys.leasePresence).string ?? ""
            let followers = try await client.send("PUBSUB", "CHANNELS", keys.presence("\(second):*")).array ?? []
            if presence.hasPrefix("\(first):"), !followers.isEmpty { return }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// A long lease (6 s) in both tests below: a handover well within it can only be a takeover.
    static let longLease = ["SWERVE_LEASE_TTL_MS": "6000"]

    @Test func aLeaderKilledWithSIGKILLIsReplacedWithoutWaitingOutItsLease() async throws {
        let first = try controller("c1", environment: Self.longLease)
        try await awaitLeader("c1")
        let second = try controller("c2", environment: Self.longLease)
        defer { first.kill(); second.kill() }
        try await awaitTakeoverReady(leader: "c1", follower: "c2")
        // The lease was renewed within the last 1.2 s: it has at least 4.8 s to run.
        let killed = ContinuousClock.now
        try await awaitLeader("c2", after: { first.kill(SIGKILL) })
        #expect(ContinuousClock.now - killed < .milliseconds(4000), "taken over, not expired")
        let elected = try await awaitEvent { $0.event.kind == .leaderElected && $0.controller == "c2" }
        #expect(elected.event.message == "controller c2 leads from epoch \(elected.epoch)" && elected.event.backend.isEmpty)
        let earlier = try await client.send("XRANGE", keys.events, "-", elected.id).streamEntries
            .compactMap { try? EventEntry(id: $0.id, fields: $0.fields, source: keys.events) }
        #expect(earlier.contains { $0.event.kind == .leaderElected && $0.controller == "c1" && $0.epoch < elected.epoch },
                "c1's term was announced before c2's")
        second.kill(SIGTERM)
        let (_, stderr) = await second.exit()
        #expect(stderr.contains("took the lease over"), "c2 says why it leads:\n\(stderr)")
    }

    /// The first event (read from the start of the stream, blocking for new ones) that
    /// `matches`, within `timeout`.
    func awaitEvent(timeout: Duration = .seconds(10), _ matches: (EventEntry) -> Bool) async throws -> EventEntry {
        let deadline = ContinuousClock.now + timeout
        var after = "0"
        while ContinuousClock.now < deadline {
            let reply = try await client.send(RedisCommand("XREAD", arguments: ["BLOCK", 1000, "STREAMS", keys.events, after]), timeout: .seconds(5))
            for entry in reply.streamEntries(readFrom: keys.events) {
                after = entry.id
                if let event = try? EventEntry(id: entry.id, fields: entry.fields, source: keys.events), matches(event) { return event }
            }
        }
        throw TestFailure("no matching event within \(timeout)")
    }

    /// The leader lives but loses every connection to Redis (here: frozen, and its connections
    /// killed with `CLIENT KILL`): the follower takes over; the old leader, when it runs again,
    /// steps down without writing — one leader per epoch.
    @Test func aLeaderWhoseConnectionsAreKilledIsReplacedAndStepsDown() async throws {
        let first = try controller("c1", environment: Self.longLease)
        try await awaitLeader("c1")
        let second = try controller("c2", environment: Self.longLease)
        defer { first.kill(SIGCONT); first.kill(); second.kill() }
        try await awaitTakeoverReady(leader: "c1", follower: "c2")
        let old = try DocumentCodec.decode(LeaderRecord.self, from: try #require(try await client.send("GET", keys.leader).bytes), source: keys.leader)

        first.kill(SIGSTOP)
        let cut = ContinuousClock.now
        try await awaitLeader("c2", after: {
            let clients = try #require(try await client.send("CLIENT", "LIST").string)
            // Only this test's c1: other suites run controllers named c1 on the same Redis.
            let ids = clients.split(whereSeparator: \.isNewline).filter { $0.contains(" name=swerve-controller-\(keys.cluster)-c1 ") }.compactMap { line in
                line.split(separator: " ").first { $0.hasPrefix("id=") }.map { String($0.dropFirst(3)) }
            }
            #expect(ids.count >= 3, "the lease, write and subscriber connections: \(clients)")
            for id in ids { _ = try await client.send("CLIENT", "KILL", "ID", id) }
        })
        #expect(ContinuousClock.now - cut < .milliseconds(4000), "taken over, not expired")
        // A request through the new leader: the checkpoint is written under its epoch.
        let created = Request.Operation.createBackend(tag: "api", config: BackendConfig(numReplicas: 0),
                                                      replicaConfig: ReplicaConfig(workload: .builtin(name: "echo"), resources: Resources(cpu: 1)))
        #expect(try await request(created, goal: "g-1") == GoalOutcome(goal: "g-1"))
        let epoch = try #require(try await client.send("GET", keys.checkpointEpoch).integer)
        #expect(epoch > old.epoch)

        // The old leader runs again within its trust window: its next renew is refused.
        first.kill(SIGCONT)
        // A log line is all that shows it (no key changes): read the log until it says so.
        let resumed = ContinuousClock.now
        while !first.stderrSoFar.contains("stepped down"), ContinuousClock.now - resumed < .seconds(10) {
            try await Task.sleep(for: .milliseconds(50))
        }
        first.kill(SIGTERM)
        let (_, stderr) = await first.exit()
        #expect(stderr.contains("stepped down"), "c1 noticed:\n\(stderr)")
        #expect(try await client.send("GET", keys.checkpointEpoch).integer == epoch, "and wrote nothing under its epoch")
        let leader = try DocumentCodec.decode(LeaderRecord.self, from: try #require(try await client.send("GET", keys.leader).bytes), source: keys.leader)
        #expect(leader.id == "c2" && leader.epoch == epoch)
    }

    @Test func aRequestWrittenWhileNoControllerRunsIsAppliedWhenOneStarts() async throws {
        let agent = try node()
        defer { agent.kill(SIGTERM) }
        try await append(.createBackend(tag: "api", config: BackendConfig(numReplicas: 1),
                                        replicaConfig: ReplicaConfig(workload: .builtin(name: "echo"), resources: Resources(cpu: 1))), goal: "g-queued")
        #expect(try await client.send("EXISTS", keys.goal("g-queued")) == .integer(0), "nobody applied it yet")
        let late = try controller("c-late")
        defer { late.kill() }
        #expect(try await outcome(of: "g-queued") == GoalOutcome(goal: "g-queued"))
    }

    /// Entries any program may write: 120 unreadable ones in a row (more than one read's
    /// worth) fail their goals once each, and the valid request after them is applied.
    @Test func aRunOfBadEntriesFailsTheirGoalsAndDoesNotStallTheStream() async throws {
        var commands: [RedisCommand] = []
        for index in 0..<120 {
            switch index % 3 {
            case 0: commands.append(RedisCommand("XADD", keys.requests, "*", "goal", "bad-\(index)", "request", "{not json"))
            case 1: commands.append(RedisCommand("XADD", keys.requests, "*", "schemaVersion", "1", "goal", "bad-\(index)",
                                                 "request", "{\"updateBackendConfig\":{\"tag\":\"api\",\"patch\":{\"numReplicas\":100000000000}}}"))
            default: commands.append(RedisCommand("XADD", keys.requests, "*", "schemaVersion", "1", "request", "{}"))
            }
        }
        _ = try await client.pipeline(commands)
        let agent = try node()
        let leader = try controller("c1")
        defer { leader.kill(); agent.kill(SIGTERM) }
        #expect(try await request(.createBackend(tag: "api", config: BackendConfig(numReplicas: 1),
                                                 replicaConfig: ReplicaConfig(workload: .builtin(name: "echo"), resources: Resources(cpu: 1))),
                                  goal: "g-after") == GoalOutcome(goal: "g-after"))
        #expect(try await outcome(of: "bad-0").failure?.contains("missing field \"schemaVersion\"") == true)
        #expect(try await outcome(of: "bad-1").failure?.contains("config.numReplicas: must be between 0 and 10000, got 100000000000") == true)
        #expect(try await outcome(of: "bad-118").failure != nil)
    }

    @Test func anUnreadableCheckpointIsRefusedAndLeftAsItWas() async throws {
        try await client.send("SET", keys.checkpoint, "{\"schemaVersion\":99}")
        var started: SwerveProcess?
        let subscriber = RedisSubscriber(configuration: client.configuration, logger: logger)
        try await subscriber.subscribe(to: [keys.leaderEvents]) { subscription in
            var iterator = subscription.makeAsyncIterator()
            #expect(await iterator.next() == .subscribed)
            started = try controller("c-x")
            // It is elected, reads the checkpoint, refuses, and releases the lease.
            var seen: [LeaderEvent.Event] = []
            while seen != [.elected, .left], let event = await iterator.next() {
                if case .message(let message) = event, let announced = try? DocumentCodec.decode(LeaderEvent.self, from: message.payload, source: keys.leaderEvents) {
                    seen.append(announced.event)
                }
            }
        }
        let stubborn = try #require(started)
        #expect(try await client.send("EXISTS", keys.lease) == .integer(0), "it does not sit on the lease")
        stubborn.kill(SIGTERM)
        let (_, stderr) = await stubborn.exit()
        #expect(stderr.contains("refusing to lead") && stderr.contains("schema version 99"))
        #expect(try await client.send("GET", keys.checkpoint).string == "{\"schemaVersion\":99}")
    }

    func cli(_ arguments: [String]) async throws -> (status: Int32, output: String, errors: String) {
        let process = try SwerveProcess(arguments + ["--redis", url, "--cluster", keys.cluster], environment: [:], captureOutput: true)
        let (status, errors) = await process.exit()
        return (status, process.output, errors)
    }

    @Test func theCommandsApplyScaleShowAndDeleteABackend() async throws {
        let leader = try controller("c1")
        let agent = try node()
        defer { leader.kill(); agent.kill(SIGTERM) }

        let applied = try await cli(["apply", "--tag", "api", "--replicas", "2", "--builtin", "echo", "--cpu", "1", "--route", "/api"])
        #expect(applied.status == 0)
        #expect(applied.output == "api: healthy (2/2 running)\n")

        let status = try await cli(["status", "--json"])
        let parsed = try JSONDecoder().decode([String: BackendStatus].self, from: Data(status.output.utf8))
        #expect(parsed["api"]?.kind == .healthy && parsed["api"]?.reason == "2/2 running" && parsed["api"]?.running == 2)

        #expect(try await cli(["scale", "api", "1"]).output == "api: healthy (1/1 running)\n")

        let goal = try await cli(["scale", "api", "3", "--no-wait"]).output.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(goal.count == 36, "a goal id")
        #expect(try await cli(["wait", goal]).output == "done\n")

        let length = try await client.send("XLEN", keys.requests)
        let invalid = try await cli(["apply", "--tag", "bad tag", "--replicas=-1", "--builtin", "nope"])
        #expect(invalid.status != 0)
        #expect(invalid.errors.contains("config.numReplicas: must be between 0 and 10000, got -1"))
        #expect(invalid.errors.contains("replicaConfig.builtin: unknown handler \"nope\""))
        #expect(try await client.send("XLEN", keys.requests) == length, "nothing was written")

        let missing = try await cli(["scale", "ghost", "2"])
        #expect(missing.status == 1)
        #expect(missing.output == "ghost: failed: no backend named \"ghost\"\n")

        // A YAML file with two backends, then one with a typo: refused, nothing written.
        let directory = ProcessInfo.processInfo.environment["SWERVE_TEST_TMPDIR"] ?? NSTemporaryDirectory()
        let spec = "\(directory)/\(keys.cluster)-backends.yaml"
        try "backends:\n  - {tag: web, config: {numReplicas: 1, routePrefix: /web}, replicaConfig: {builtin: echo, resources: {cpu: 1}}}\n  - {tag: jobs, replicaConfig: {builtin: sleep, resources: {cpu: 1}}}\n"
            .write(toFile: spec, atomically: true, encoding: .utf8)
        let fromFile = try await cli(["apply", "-f", spec])
        #expect(fromFile.status == 0 && fromFile.output == "web: healthy (1/1 running)\njobs: healthy (1/1 running)\n", "\(fromFile.errors)")
        try "tag: web\nconfig: {numReplicas: 1, routPrefix: /web}\nreplicaConfig: {builtin: echo}\n".write(toFile: spec, atomically: true, encoding: .utf8)
        let before = try await client.send("XLEN", keys.requests)
        let typo = try await cli(["apply", "-f", spec])
        #expect(typo.status != 0 && typo.errors.contains("web: config.routPrefix: unknown field"), "\(typo.errors)")
        #expect(try await client.send("XLEN", keys.requests) == before, "nothing was written")

        #expect(try await cli(["delete", "api"]).status == 0)
        #expect(try await cli(["delete", "web"]).status == 0)
        #expect(try await cli(["delete", "jobs"]).status == 0)
        #expect(try await cli(["status", "--json"]).output == "{}\n")
    }
}
