import Foundation
import Glibc
import Logging
import SwerveCore
import SwerveProtocol
import SwerveRedis
import SwerveSystem
import SwerveTestSupport
import Testing

/// Real `swerve worker` processes against the throwaway Redis of `ops/test`, driven the way a
/// leader and a node agent would: assignments and drain requests written into Redis.
@Suite(.timeLimit(.minutes(1))) struct WorkerProcesses {
    let url: String
    let keys: ClusterKeys
    let client: RedisClient
    let logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }

    init() throws {
        (url, keys, client) = try TestCluster.make(prefix: "w")
    }

    func assign(_ tag: String, _ workload: ReplicaConfig.Workload, waitLoopS: Double = 0.2) async throws {
        let document = AssignmentDocument(ReplicaAssignment(
            replica: ReplicaReference(tag: tag, backend: "api", node: "n1"), version: "v1",
            replicaConfig: ReplicaConfig(workload: workload), userConfig: .string("first"),
            maxConcurrentQueries: 10, gracefulShutdownWaitLoopS: waitLoopS))
        try await client.send("HSET", keys.assignments("n1"), tag, DocumentCodec.encode(document))
    }

    func start(_ tag: String, agentPID: Int32 = getpid()) throws -> SwerveProcess {
        try SwerveProcess(["worker"], environment: [
            "SWERVE_REDIS_URL": url, "SWERVE_CLUSTER": keys.cluster, "SWERVE_NODE_ID": "n1",
            "SWERVE_NODE_ADDRESS": "127.0.0.1", "SWERVE_REPLICA_TAG": tag, "SWERVE_AGENT_PID": "\(agentPID)",
            "SWERVE_LOG_LEVEL": "warning",
        ])
    }

    /// Subscribes to the wake channel, runs `body`, and returns once `event` for `tag` arrives.
    func awaitWake(_ event: WakeUp.Event, for tag: String, after body: () async throws -> Void) async throws {
        let subscriber = RedisSubscriber(configuration: try RedisConfiguration(url: url), logger: logger)
        try await subscriber.subscribe(to: [keys.wake]) { subscription in
            var iterator = subscription.makeAsyncIterator()
            #expect(await iterator.next() == .subscribed)
            try await body()
            while let next = await iterator.next() {
                guard case .message(let message) = next, let wake = try? DocumentCodec.decode(WakeUp.self, from: message.payload, source: keys.wake) else { continue }
                if wake == WakeUp(event: event, subject: tag) { return }
            }
            throw TestFailure("the subscription ended before \(event) for \(tag)")
        }
    }

    func readyRecord(_ tag: String) async throws -> ReadyRecord? {
        guard let bytes = try await client.send("GET", keys.ready(tag)).bytes else { return nil }
        return try DocumentCodec.decode(ReadyRecord.self, from: bytes, source: keys.ready(tag))
    }

    @Test func aWorkerReportsReadyWithAnAddressThatServes() async throws {
        let tag = "api#ready1"
        try await assign(tag, .builtin(name: "echo"))
        var worker: SwerveProcess?
        try await awaitWake(.ready, for: tag) { worker = try start(tag) }
        let ready = try #require(try await readyRecord(tag))
        #expect(ready.node == "n1" && ready.version == "v1" && ready.backend == "api")
        #expect(ready.pid == worker?.process.processIdentifier)
        #expect(try await client.send("PTTL", keys.ready(tag)).integer == -1, "written once: its node's heartbeat vouches for it")
        #expect(try await client.send("SISMEMBER", keys.changedReplicas, tag).integer == 1, "marked changed for the leader")
        let response = try await httpRequest(ready.address, method: "POST", body: Array("hello".utf8))
        #expect(response.status == 200)
        #expect(response.body == Array("hello".utf8))
        #expect(response.headers["x-swerve-replica"] == tag)
        let config = try await httpRequest(ready.address, path: "/-/user-config")
        #expect(String(decoding: config.body, as: UTF8.self) == "\"first\"")
    }

    @Test func aDrainLetsTheInFlightRequestFinishThenReportsDrainedAndExits() async throws {
        let tag = "api#drain1"
        // A 1 s wait loop: the request is accepted whether it arrives just before or just after
        // the drain begins, so no sleep is needed to order them.
        try await assign(tag, .builtin(name: "sleep", options: ["ms": .number(800)]), waitLoopS: 1)
        var started: SwerveProcess?
        try await awaitWake(.ready, for: tag) { started = try start(tag) }
        let worker = try #require(started)
        let address = try #require(try await readyRecord(tag)).address

        async let slow = httpRequest(address)
        try await awaitWake(.drained, for: tag) {
            let drain = DrainRequest(tag: tag, deadline: Timestamp(milliseconds: Int64(Date().timeIntervalSince1970 * 1000) + 20_000), force: false)
            try await client.send("SET", keys.drain(tag), DocumentCodec.encode(drain))
            try await client.send("PUBLISH", keys.control(tag), DocumentCodec.encode(ControlMessage(event: .drain)))
        }
        let response = try await slow
        #expect(response.status == 200, "the in-flight request finished")
        #expect(String(decoding: response.body, as: UTF8.self).hasPrefix("slept 800 ms"))
        #expect(try await client.send("EXISTS", keys.drained(tag)) == .integer(1))
        #expect(try await client.send("EXISTS", keys.ready(tag)) == .integer(0))
        let (status, _) = await worker.exit()
        #expect(status == 0)
        await #expect(throws: (any Error).self, "the listener is closed") { try await httpRequest(address) }
    }

    @Test func aUserConfigUpdateReachesTheRunningReplicaWithoutARestart() async throws {
        let tag = "api#config1"
        try await assign(tag, .builtin(name: "echo"))
        var started: SwerveProcess?
        try await awaitWake(.ready, for: tag) { started = try start(tag) }
        _ = started
        let ready = try #require(try await readyRecord(tag))
        try await client.send("SET", keys.userConfig(tag), DocumentCodec.encode(UserConfigDocument(tag: tag, userConfig: .object(["v": .number(2)]))))
        try await client.send("PUBLISH", keys.control(tag), DocumentCodec.encode(ControlMessage(event: .config)))
        var body = ""
        for _ in 0..<100 where body != #"{"v":2}"# {
            body = String(decoding: try await httpRequest(ready.address, path: "/-/user-config").body, as: UTF8.self)
            if body != #"{"v":2}"# { try await Task.sleep(for: .milliseconds(20)) }
        }
        #expect(body == #"{"v":2}"#)
        #expect(try await readyRecord(tag)?.pid == ready.pid, "same process")
    }

    @Test func aWorkerWhoseNodeAgentIsGoneExitsByItself() async throws {
        let tag = "api#orphan1"
        try await assign(tag, .builtin(name: "echo"))
        // Its parent (this test process) is not the agent it was told about: as if the agent died.
        let worker = try start(tag, agentPID: 1)
        let (status, stderr) = await worker.exit()
        #expect(status == 1)
        #expect(stderr.contains("node agent 1 is gone"))
    }

    @Test func aMissingAssignmentIsAClearError() async throws {
        let worker = try start("api#nothing")
        let (status, stderr) = await worker.exit()
        #expect(status == 2)
        #expect(stderr.contains("no assignment for api#nothing in \(keys.assignments("n1"))"))
    }

    @Test func aMalformedAssignmentNamesTheKeyAndField() async throws {
        let tag = "api#bad1"
        try await client.send("HSET", keys.assignments("n1"), tag, #"{"schemaVersion":1,"tag":"api#bad1"}"#)
        let (status, stderr) = try await start(tag).exit()
        #expect(status == 2)
        #expect(stderr.contains("\(keys.assignments("n1")) field \(tag) holds a malformed AssignmentDocument: missing field"))
    }

    /// A tiny program that serves on $PORT, reports its user config file and SIGHUPs, and
    /// exits on SIGTERM (or by itself when asked to).
    static let commandScript = """
        import http.server, json, os, signal, sys
        hups = 0
        def on_hup(*_):
            global hups
            hups += 1
        signal.signal(signal.SIGHUP, on_hup)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path == "/die":
                    os._exit(7)
                if self.path == "/env":
                    body = json.dumps({"swerve": sorted(k for k in os.environ if k.startswith("SWERVE_")), "extra": os.environ.get("EXTRA"),
                                       "path": "PATH" in os.environ}, sort_keys=True).encode()
                else:
                    with open(os.environ["SWERVE_USER_CONFIG_FILE"]) as f:
                        config = json.load(f)
                    body = json.dumps({"config": config, "hups": hups, "tag": os.environ["SWERVE_REPLICA_TAG"]}, sort_keys=True).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            def log_message(self, *args):
                pass
        http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
        """

    /// Writes the script under the run's scratch directory (ops/test's clean-up kills whatever
    /// names it); tests that start a worker directly stop its program with ``stopPrograms(of:)``.
    func commandWorkload() throws -> ReplicaConfig.Workload {
        let directory = ProcessInfo.processInfo.environment["SWERVE_TEST_TMPDIR"] ?? NSTemporaryDirectory()
        let path = directory + "/swerve-test-server-\(UUID().uuidString.prefix(8)).py"
        try Self.commandScript.write(toFile: path, atomically: true, encoding: .utf8)
        return .command(arguments: ["python3", path], environment: ["EXTRA": "1"], healthPath: "/")
    }

    /// A worker started without a node agent is not a process-group leader, so killing it
    /// does not reach its program: stop the program by its (unique) script path.
    func stopPrograms(of workload: ReplicaConfig.Workload) {
        guard case .command(let arguments, _, _) = workload, let script = arguments.last else { return }
        if case .success(let pid) = spawnProcess(executable: "pkill", arguments: ["-9", "-f", script], environment: ProcessInfo.processInfo.environment, newProcessGroup: false) {
            var status: Int32 = 0
            waitpid(pid, &status, 0)
        }
    }

    /// Assigns `tag` a command replica running ``commandScript``, starts its worker and returns
    /// once it is ready; the caller stops the program with ``stopPrograms(of:)``.
    func startCommandReplica(_ tag: String) async throws -> (ready: ReadyRecord, worker: SwerveProcess, workload: ReplicaConfig.Workload) {
        let workload = try commandWorkload()
        try await assign(tag, workload)
        var started: SwerveProcess?
        try await awaitWake(.ready, for: tag) { started = try start(tag) }
        return (try #require(try await readyRecord(tag)), try #require(started), workload)
    }

    @Test func aCommandReplicaServesOnItsPortAndGetsUserConfigsBySignal() async throws {
        let tag = "api#cmd1"
        let (ready, worker, workload) = try await startCommandReplica(tag)
        defer { stopPrograms(of: workload) }
        _ = worker
        let first = String(decoding: try await httpRequest(ready.address).body, as: UTF8.self)
        #expect(first == #"{"config": "first", "hups": 0, "tag": "api#cmd1"}"#)

        try await client.send("SET", keys.userConfig(tag), DocumentCodec.encode(UserConfigDocument(tag: tag, userConfig: .number(2))))
        try await client.send("PUBLISH", keys.control(tag), DocumentCodec.encode(ControlMessage(event: .config)))
        var body = ""
        for _ in 0..<100 where body != #"{"config": 2, "hups": 1, "tag": "api#cmd1"}"# {
            body = String(decoding: try await httpRequest(ready.address).body, as: UTF8.self)
            if !body.contains(#""hups": 1"#) { try await Task.sleep(for: .milliseconds(20)) }
        }
        #expect(body == #"{"config": 2, "hups": 1, "tag": "api#cmd1"}"#)
    }

    @Test func aCommandReplicaGetsNoneOfTheWorkersSwerveVariables() async throws {
        // The worker holds the launch contract (and, in production, the Redis credentials);
        // the program is the replica's code and sees its own variables only.
        let (ready, worker, workload) = try await startCommandReplica("api#cmdenv")
        defer { stopPrograms(of: workload) }
        _ = worker
        let body = String(decoding: try await httpRequest(ready.address, path: "/env").body, as: UTF8.self)
        #expect(body == #"{"extra": "1", "path": true, "swerve": ["SWERVE_REPLICA_TAG", "SWERVE_USER_CONFIG_FILE"]}"#)
    }

    @Test func aDrainedCommandIsStoppedWithSIGTERMThenTheWorkerReportsDrained() async throws {
        let tag = "api#cmd2"
        let workload = try commandWorkload()
        defer { stopPrograms(of: workload) }
        try await assign(tag, workload, waitLoopS: 0)
        var started: SwerveProcess?
        try await awaitWake(.ready, for: tag) { started = try start(tag) }
        let worker = try #require(started)
        let address = try #require(try await readyRecord(tag)).address
        try await awaitWake(.drained, for: tag) {
            let drain = DrainRequest(tag: tag, deadline: Timestamp(milliseconds: Int64(Date().timeIntervalSince1970 * 1000) + 20_000), force: false)
            try await client.send("SET", keys.drain(tag), DocumentCodec.encode(drain))
            try await client.send("PUBLISH", keys.control(tag), DocumentCodec.encode(ControlMessage(event: .drain)))
        }
        let (status, _) = await worker.exit()
        #expect(status == 0)
        await #expect(throws: (any Error).self, "the program is gone") { try await httpRequest(address) }
    }

    @Test func aCommandThatExitsTakesItsWorkerAndReadyKeyWithIt() async throws {
        let tag = "api#cmd3"
        let workload = try commandWorkload()
        defer { stopPrograms(of: workload) }
        try await assign(tag, workload)
        var started: SwerveProcess?
        try await awaitWake(.ready, for: tag) { started = try start(tag) }
        let worker = try #require(started)
        let address = try #require(try await readyRecord(tag)).address
        _ = try? await httpRequest(address, path: "/die")
        let (status, stderr) = await worker.exit()
        #expect(status == 1)
        #expect(stderr.contains("its code exited") && stderr.contains("exit code 7"))
        #expect(try await client.send("EXISTS", keys.ready(tag)) == .integer(0))
    }

    @Test func aCommandThatCannotStartIsAClearError() async throws {
        let tag = "api#cmd4"
        try await assign(tag, .command(arguments: ["no-such-program-here"]))
        let (status, stderr) = try await start(tag).exit()
        #expect(status == 2)
        #expect(stderr.contains("no program \"no-such-program-here\" on PATH"))
    }
}
