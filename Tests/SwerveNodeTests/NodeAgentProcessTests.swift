import Foundation
import Glibc
import Logging
import SwerveCore
import SwerveProtocol
import SwerveRedis
import SwerveTestSupport
import Testing

/// Real `swerve node` agents (which start real `swerve worker`s) against the throwaway Redis,
/// with assignments and drain requests written as the leader would write them.
@Suite(.timeLimit(.minutes(1))) struct NodeAgentProcesses {
    let url: String
    let keys: ClusterKeys
    let client: RedisClient
    let logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }

    init() throws {
        (url, keys, client) = try TestCluster.make(prefix: "n")
    }

    func startNode(_ extra: [String] = []) throws -> SwerveProcess {
        try SwerveProcess(["node", "--redis", url, "--cluster", keys.cluster, "--id", "n1", "--cpu", "4", "--memory", "1GiB",
                           "--shutdown-timeout", "5"] + extra,
                          environment: ["SWERVE_LOG_LEVEL": "info"])
    }

    /// Writes an assignment as the leader does: the field, the version, the notification.
    func assign(_ tag: String, _ workload: ReplicaConfig.Workload = .builtin(name: "echo"), waitLoopS: Double = 0, notify: Bool = true) async throws {
        let document = AssignmentDocument(ReplicaAssignment(
            replica: ReplicaReference(tag: tag, backend: "api", node: "n1"), version: "v1",
            replicaConfig: ReplicaConfig(workload: workload), userConfig: nil, maxConcurrentQueries: 10, gracefulShutdownWaitLoopS: waitLoopS))
        var commands = [RedisCommand("HSET", keys.assignments("n1"), tag, DocumentCodec.encode(document)), RedisCommand("INCR", keys.assignmentsVersion("n1"))]
        if notify { commands.append(RedisCommand("PUBLISH", keys.nodeNotify("n1"), "1")) }
        _ = try await client.pipeline(commands)
    }

    func drain(_ tag: String, inMs: Int64, force: Bool = false) async throws {
        let request = DrainRequest(tag: tag, deadline: Timestamp(milliseconds: Int64(Date().timeIntervalSince1970 * 1000) + inMs), force: force)
        _ = try await client.pipeline([
            RedisCommand("SET", keys.drain(tag), DocumentCodec.encode(request)),
            RedisCommand("PUBLISH", keys.control(tag), DocumentCodec.encode(ControlMessage(event: .drain))),
            RedisCommand("PUBLISH", keys.nodeNotify("n1"), "drain"),
        ])
    }

    /// Subscribes to the wake channel, runs `body`, returns once every wanted event arrived.
    /// Gives up after `timeout` saying which wake-ups never came (rather than running into the
    /// suite's time limit, which says nothing of where a test stood).
    func awaitWake(_ wanted: [WakeUp], timeout: Duration = .seconds(30), after body: () async throws -> Void) async throws {
        let subscriber = RedisSubscriber(configuration: try RedisConfiguration(url: url), logger: logger)
        let deadline = "awaitWake-timeout-\(UInt64.random(in: 0...UInt64.max))"
        try await subscriber.subscribe(to: [keys.wake]) { subscription in
            var iterator = subscription.makeAsyncIterator()
            #expect(await iterator.next() == .subscribed)
            try await body()
            // The deadline arrives as a wake-up of its own, so the wait below stays one loop.
            let watchdog = Task { [client, keys] in
                try await Task.sleep(for: timeout)
                _ = try await client.send("PUBLISH", keys.wake, DocumentCodec.encode(WakeUp(event: .ready, subject: deadline)))
            }
            defer { watchdog.cancel() }
            var missing = Set(wanted)
            while !missing.isEmpty, let next = await iterator.next() {
                guard case .message(let message) = next, let wake = try? DocumentCodec.decode(WakeUp.self, from: message.payload, source: keys.wake) else { continue }
                if wake.subject == deadline { throw TestFailure("no \(missing.map { "\($0.event) of \($0.subject)" }.sorted()) within \(timeout)") }
                missing.remove(wake)
            }
            if !missing.isEmpty { throw TestFailure("never saw \(missing)") }
        }
    }

    func document<D: ProtocolDocument>(_ type: D.Type, at key: String) async throws -> D? {
        guard let bytes = try await client.send("GET", key).bytes else { return nil }
        return try DocumentCodec.decode(type, from: bytes, source: key)
    }

    @Test func aNodeRegistersAndStartsAWorkerThatServes() async throws {
        var node: SwerveProcess?
        try await awaitWake([WakeUp(event: .nodeJoined, subject: "n1")]) { node = try startNode() }
        _ = node
        let record = try #require(try await document(NodeRecord.self, at: keys.node("n1")))
        #expect(record.resources == Resources(cpu: 4, memoryBytes: 1 << 30))
        // Its lease: the score in `nodes`, on Redis's clock, a node TTL (3 s) ahead at most.
        let lease = try #require(try await client.send("ZSCORE", keys.nodes, "n1").string.flatMap(Double.init))
        let redisNow = Double(try #require(try await client.send("TIME").timeMilliseconds))
        #expect(lease > redisNow && lease <= redisNow + 3000, "lease \(lease), Redis time \(redisNow)")
        #expect(try await client.send("SISMEMBER", keys.changedNodes, "n1").integer == 1, "marked changed for the leader")
        let ttl = try await client.send("PTTL", keys.node("n1")).integer ?? 0
        #expect(ttl > 3000 && ttl <= 60_000, "the record outlives a lease: it is renewed rarely")

        try await awaitWake([WakeUp(event: .ready, subject: "api#a1")]) { try await assign("api#a1") }
        let ready = try #require(try await document(ReadyRecord.self, at: keys.ready("api#a1")))
        #expect(try await httpRequest(ready.address, method: "POST", body: Array("hi".utf8)).body == Array("hi".utf8))
    }

    @Test func theAgentsMetricsCountStartsExitsByReasonAndDrains() async throws {
        let port = try freeLoopbackPort()
        var node: SwerveProcess?
        // The endpoint serves before the agent registers: joined means it answers.
        try await awaitWake([WakeUp(event: .nodeJoined, subject: "n1")]) { node = try startNode(["--metrics-address", "127.0.0.1:\(port)"]) }
        defer { node?.kill() }
        func metrics() async throws -> [String: Double] {
            let text = String(decoding: try await httpRequest("127.0.0.1:\(port)", path: "/metrics").body, as: UTF8.self)
            var values: [String: Double] = [:]
            for line in text.split(separator: "\n") where !line.hasPrefix("#") {
                let parts = line.split(separator: " ")
                if parts.count == 2, let value = Double(parts[1]) { values[String(parts[0])] = value }
            }
            return values
        }
        try await awaitWake([WakeUp(event: .ready, subject: "api#m1"), WakeUp(event: .ready, subject: "api#m2")]) {
            try await assign("api#m1")
            try await assign("api#m2")
        }
        var seen = try await metrics()
        #expect(seen["swerve_node_workers"] == 2 && seen["swerve_node_worker_starts_total{result=\"started\"}"] == 2, "\(seen)")
        try await awaitWake([WakeUp(event: .exited, subject: "api#m1")]) { try await drain("api#m1", inMs: 10_000) }
        let ready = try #require(try await document(ReadyRecord.self, at: keys.ready("api#m2")))
        try await awaitWake([WakeUp(event: .exited, subject: "api#m2")]) { _ = Glibc.kill(ready.pid, SIGKILL) }
        seen = try await metrics()
        #expect(seen["swerve_node_workers"] == 0, "\(seen)")
        #expect(seen["swerve_node_worker_exits_total{reason=\"drained\"}"] == 1 && seen["swerve_node_worker_exits_total{reason=\"crashed\"}"] == 1,
                "a drained exit and a kill the agent did not make: \(seen)")
        #expect(seen["swerve_node_drain_duration_seconds_count"] == 1, "one drain timed: \(seen)")
    }

    @Test func aKilledWorkerIsReportedWithItsSignalAndNotRestarted() async throws {
        let node = try startNode()
        try await awaitWake([WakeUp(event: .ready, subject: "api#k1")]) { try await assign("api#k1") }
        let ready = try #require(try await document(ReadyRecord.self, at: keys.ready("api#k1")))
        try await awaitWake([WakeUp(event: .exited, subject: "api#k1")]) { _ = Glibc.kill(ready.pid, SIGKILL) }
        let exit = try #require(try await document(ExitRecord.self, at: keys.exit("api#k1")))
        #expect(exit.signal == SIGKILL && exit.pid == ready.pid && exit.reason == "signal 9 (SIGKILL)")
        // Its node retracted its ready record with the exit record, before the wake-up, and
        // marked it changed for the leader.
        #expect(try await client.send("EXISTS", keys.ready("api#k1")) == .integer(0))
        #expect(try await client.send("SISMEMBER", keys.changedReplicas, "api#k1").integer == 1)
        // Another assignment makes the agent reconverge; once its replica is ready, the agent
        // has decided about api#k1 again — and must not have restarted it: the leader decides.
        try await awaitWake([WakeUp(event: .ready, subject: "api#k2")]) { try await assign("api#k2") }
        node.kill(SIGTERM)
        let (_, stderr) = await node.exit()
        #expect(stderr.components(separatedBy: "started worker").count - 1 == 2, "one start each for api#k1 and api#k2:\n\(stderr)")
        #expect(stderr.contains("replica=api#k1") && stderr.contains("reason=signal 9 (SIGKILL)"))
    }

    @Test func aWorkerThatCannotBeStartedIsRecordedAsAnExit() async throws {
        let node = try startNode(["--worker-command", "/nonexistent/worker"])
        try await awaitWake([WakeUp(event: .exited, subject: "api#x1")]) { try await assign("api#x1") }
        #expect(try await document(ExitRecord.self, at: keys.exit("api#x1"))?.code == 127)
        node.kill(SIGTERM)
        let (_, stderr) = await node.exit()
        #expect(stderr.contains("cannot start /nonexistent/worker: No such file or directory"))
    }

    @Test func aCommandTheNodeDoesNotAllowIsRefusedWithAReasonAndBuiltinsStillRun() async throws {
        // Only python3 under /usr/bin: `sh -c …` (what a leaked credential would assign) is
        // refused before any worker starts; a built-in replica is no program and runs.
        let node = try startNode(["--allow-command", "/usr/bin/python3*"])
        defer { node.kill(SIGTERM) }
        try await awaitWake([WakeUp(event: .exited, subject: "api#sh1")]) {
            try await assign("api#sh1", .command(arguments: ["sh", "-c", "touch /tmp/owned"]))
        }
        let exit = try #require(try await document(ExitRecord.self, at: keys.exit("api#sh1")))
        #expect(exit.code == 126 && exit.pid == 0)
        #expect(exit.reason.hasPrefix("exit code 126: refused by node n1: the program \"/usr/bin/sh\" is not allowed on this node; allowed here: /usr/bin/python3*")
                || exit.reason.hasPrefix("exit code 126: refused by node n1: the program \"/bin/sh\" is not allowed on this node; allowed here: /usr/bin/python3*"),
                "\(exit.reason)")
        try await awaitWake([WakeUp(event: .exited, subject: "api#sh2")]) {
            try await assign("api#sh2", .command(arguments: ["/usr/bin/python3/../../bin/sh", "-c", "true"]))
        }
        #expect(try await document(ExitRecord.self, at: keys.exit("api#sh2"))?.reason.contains("has . or .. in its path") == true)
        try await awaitWake([WakeUp(event: .ready, subject: "api#b1")]) { try await assign("api#b1") }
    }

    @Test func aWorkerKilledAloneTakesItsCommandsProgramWithIt() async throws {
        let directory = ProcessInfo.processInfo.environment["SWERVE_TEST_TMPDIR"] ?? NSTemporaryDirectory()
        let script = directory + "/swerve-orphan-\(UUID().uuidString.prefix(8)).py"
        try """
            import http.server, os
            http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), http.server.BaseHTTPRequestHandler).serve_forever()
            """.write(toFile: script, atomically: true, encoding: .utf8)
        var node: SwerveProcess?
        try await awaitWake([WakeUp(event: .ready, subject: "api#p1")]) {
            node = try startNode()
            try await assign("api#p1", .command(arguments: ["python3", script]))
        }
        defer { node?.kill(SIGTERM) }
        let ready = try #require(try await document(ReadyRecord.self, at: keys.ready("api#p1")))
        #expect(try await httpRequest(ready.address).status != 0, "the program serves")
        try await awaitWake([WakeUp(event: .exited, subject: "api#p1")]) { _ = Glibc.kill(ready.pid, SIGKILL) }
        // The node killed the worker's process group on reaping it: the program is gone too.
        var refused = false
        for _ in 0..<100 where !refused {
            refused = (try? await httpRequest(ready.address)) == nil
            if !refused { try await Task.sleep(for: .milliseconds(20)) }
        }
        #expect(refused, "nothing listens on the replica's port any more")
    }

    @Test func aMissedNotificationIsCaughtByThePeriodicReread() async throws {
        var node: SwerveProcess?
        try await awaitWake([WakeUp(event: .nodeJoined, subject: "n1")]) { node = try startNode() }
        _ = node
        try await awaitWake([WakeUp(event: .ready, subject: "api#m1")]) { try await assign("api#m1", notify: false) }
    }

    @Test func aWorkerStillBusyAtItsDrainDeadlineIsKilled() async throws {
        var node: SwerveProcess?
        try await awaitWake([WakeUp(event: .ready, subject: "api#d1")]) {
            node = try startNode()
            // A 1 s wait loop accepts the slow request even if it arrives after the drain began.
            try await assign("api#d1", .builtin(name: "sleep", options: ["ms": .number(30_000)]), waitLoopS: 1)
        }
        _ = node
        let ready = try #require(try await document(ReadyRecord.self, at: keys.ready("api#d1")))
        async let stuck: Void = { _ = try? await httpRequest(ready.address) }()
        try await awaitWake([WakeUp(event: .exited, subject: "api#d1")]) { try await drain("api#d1", inMs: 1500) }
        let exit = try #require(try await document(ExitRecord.self, at: keys.exit("api#d1")))
        #expect(exit.signal == SIGKILL, "killed at the deadline, not drained")
        #expect(try await client.send("EXISTS", keys.drained("api#d1")) == .integer(0))
        await stuck
    }

    @Test func aCommandThatIgnoresSIGTERMIsKilledAtItsDrainDeadline() async throws {
        let script = NSTemporaryDirectory() + "swerve-stubborn-\(UUID().uuidString.prefix(8)).py"
        try """
            import http.server, os, signal
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), http.server.BaseHTTPRequestHandler).serve_forever()
            """.write(toFile: script, atomically: true, encoding: .utf8)
        var node: SwerveProcess?
        try await awaitWake([WakeUp(event: .ready, subject: "api#s1")]) {
            node = try startNode()
            try await assign("api#s1", .command(arguments: ["python3", script]))
        }
        _ = node
        let drainedAt = ContinuousClock.now
        try await awaitWake([WakeUp(event: .exited, subject: "api#s1")]) { try await drain("api#s1", inMs: 1000) }
        #expect(ContinuousClock.now - drainedAt >= .milliseconds(900), "it was given until the deadline")
        #expect(try await document(ExitRecord.self, at: keys.exit("api#s1"))?.signal == SIGKILL)
        #expect(try await client.send("EXISTS", keys.drained("api#s1")) == .integer(0))
    }

    @Test func aForcedDrainKillsAtOnceAndARemovedAssignmentKills() async throws {
        var node: SwerveProcess?
        try await awaitWake([WakeUp(event: .ready, subject: "api#f1"), WakeUp(event: .ready, subject: "api#r1")]) {
            node = try startNode()
            try await assign("api#f1")
            try await assign("api#r1")
        }
        _ = node
        try await awaitWake([WakeUp(event: .exited, subject: "api#f1")]) { try await drain("api#f1", inMs: 60_000, force: true) }
        try await awaitWake([WakeUp(event: .exited, subject: "api#r1")]) {
            _ = try await client.pipeline([RedisCommand("HDEL", keys.assignments("n1"), "api#r1"), RedisCommand("INCR", keys.assignmentsVersion("n1")),
                                           RedisCommand("PUBLISH", keys.nodeNotify("n1"), "2")])
        }
        #expect(try await document(ExitRecord.self, at: keys.exit("api#f1"))?.signal == SIGKILL)
        #expect(try await client.send("EXISTS", keys.drained("api#f1")) == .integer(0), "a forced drain does not drain")
        #expect(try await document(ExitRecord.self, at: keys.exit("api#r1"))?.signal == SIGKILL)
    }

    @Test func aMalformedAssignmentIsReportedAndTheOthersRun() async throws {
        var started: SwerveProcess?
        try await awaitWake([WakeUp(event: .ready, subject: "api#ok1")]) {
            try await client.send("HSET", keys.assignments("n1"), "api#bad", "{\"schemaVersion\":1}")
            try await assign("api#ok1")
            started = try startNode()
        }
        let node = try #require(started)
        node.kill(SIGTERM)
        let (_, stderr) = await node.exit()
        #expect(stderr.contains("ignoring a malformed assignment"))
        #expect(stderr.contains("\(keys.assignments("n1")) field api#bad holds a malformed AssignmentDocument"))
    }

    @Test func aKilledNodeAgentLeavesNoWorkerBehind() async throws {
        let node = try startNode()
        try await awaitWake([WakeUp(event: .ready, subject: "api#o1")]) { try await assign("api#o1") }
        let pid = try #require(try await document(ReadyRecord.self, at: keys.ready("api#o1"))).pid
        node.kill(SIGKILL)
        var gone = false
        for _ in 0..<100 where !gone {
            gone = Glibc.kill(pid, 0) != 0 || (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8))?.contains(") Z ") == true
            if !gone { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(gone, "the orphaned worker exited by itself")
    }

    @Test func sigtermDrainsTheWorkersDeregistersAndExits() async throws {
        let node = try startNode()
        try await awaitWake([WakeUp(event: .ready, subject: "api#t1")]) { try await assign("api#t1") }
        try await awaitWake([WakeUp(event: .nodeLeft, subject: "n1"), WakeUp(event: .drained, subject: "api#t1")]) { node.kill(SIGTERM) }
        let (status, _) = await node.exit()
        #expect(status == 0)
        #expect(try await client.send("EXISTS", keys.node("n1")) == .integer(0))
        #expect(try await client.send("ZSCORE", keys.nodes, "n1") == .null)
    }

    /// The Python worker of examples/python-worker, written from PROTOCOL.md alone, goes through
    /// the same life under a real node agent: ready, serving, drained on request, exit 0.
    @Test func thePythonWorkerFollowsTheSameProtocol() async throws {
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let script = repository.appendingPathComponent("examples/python-worker/worker.py").path
        let node = try startNode(["--worker-command", "python3 \(script)"])
        // CI once ran into the suite's time limit here; should it again, say where and what the
        // agent and its worker logged.
        let failing = { (error: any Error) -> any Error in TestFailure("\(error)\nnode agent and worker stderr:\n\(node.stderrSoFar)") }
        do {
            try await pythonWorkerLife(node)
        } catch {
            throw failing(error)
        }
    }

    func pythonWorkerLife(_ node: SwerveProcess) async throws {
        try await awaitWake([WakeUp(event: .ready, subject: "api#py1")]) { try await assign("api#py1") }
        let ready = try #require(try await document(ReadyRecord.self, at: keys.ready("api#py1")))
        #expect(ready.node == "n1" && ready.version == "v1")
        let response = try await httpRequest(ready.address, method: "POST", body: Array("from swift".utf8))
        #expect(response.status == 200 && response.body == Array("from swift".utf8) && response.headers["x-swerve-replica"] == "api#py1")
        try await awaitWake([WakeUp(event: .drained, subject: "api#py1"), WakeUp(event: .exited, subject: "api#py1")]) {
            try await drain("api#py1", inMs: 20_000)
        }
        #expect(try await document(ExitRecord.self, at: keys.exit("api#py1"))?.code == 0)
        #expect(try await client.send("EXISTS", keys.ready("api#py1")) == .integer(0))
        node.kill(SIGTERM)
        _ = await node.exit()
    }
}
