import Foundation
import Glibc
import Logging
import SwerveCore
import SwerveProtocol
import SwerveRedis
import SwerveTestSupport
import Synchronization
import Testing

/// Real routers in front of real controllers, node agents and workers.
@Suite(.timeLimit(.minutes(1))) struct RouterProcesses: ClusterTest {
    let url: String
    let keys: ClusterKeys
    let client: RedisClient
    let logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }

    init() throws {
        (url, keys, client) = try TestCluster.make(prefix: "r")
    }

    init(url: String, keys: ClusterKeys, client: RedisClient) {
        (self.url, self.keys, self.client) = (url, keys, client)
    }

    struct RunningRouter {
        let process: SwerveProcess
        let address: String
        let admin: String
    }

    func router(_ flags: [String] = []) async throws -> RunningRouter {
        let process = try SwerveProcess(["router", "--redis", url, "--cluster", keys.cluster, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"] + flags,
                                        environment: ["SWERVE_LOG_LEVEL": "warning"], captureOutput: true)
        let words = try await process.nextOutputLine().split(separator: " ").map(String.init)
        guard words.count == 4, words[0] == "listening" else { throw TestFailure("unexpected first line: \(words)") }
        return RunningRouter(process: process, address: words[1], admin: words[3])
    }

    func backend(_ tag: String, replicas: Int, route: String, builtin: String = "echo", maxConcurrentQueries: Int = 100) -> Request.Operation {
        .createBackend(tag: tag, config: BackendConfig(numReplicas: replicas, maxConcurrentQueries: maxConcurrentQueries, gracefulShutdownWaitLoopS: 0.3, routePrefix: route),
                       replicaConfig: ReplicaConfig(workload: .builtin(name: builtin), resources: Resources(cpu: 0.1)))
    }

    /// The router's view version for routing, from `/-/routes`.
    func routesPage(_ router: RunningRouter) async throws -> [String: Any] {
        let response = try await httpRequest(router.admin, path: "/-/routes")
        return try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any] ?? [:]
    }

    /// The `/-/routes` entry of `backend`.
    func routed(_ router: RunningRouter, _ backend: String) async throws -> [String: Any]? {
        (try await routesPage(router)["backends"] as? [String: Any])?[backend] as? [String: Any]
    }

    /// Waits until the router's view has `count` replicas of `backend`.
    func awaitRouted(_ router: RunningRouter, backend: String, count: Int) async throws {
        try await poll("\(count) routed replicas of \(backend)") { (try await routed(router, backend)?["replicas"] as? [Any])?.count == count }
    }

    /// The scratch directory: a child naming it on its command line is reaped by ops/test
    /// when the run ends, even if its test could not.
    var testDirectory: String { ProcessInfo.processInfo.environment["SWERVE_TEST_TMPDIR"] ?? NSTemporaryDirectory() }

    /// A small Python HTTP/1.1 server standing in for a replica, on its own port.
    struct PythonReplica {
        let process: Process
        let address: String

        /// SIGKILL: a child of the test runner may inherit SIGTERM ignored.
        func stop() {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    /// Starts a Python server whose request handler class has `methods` (Python, written at
    /// the class's indentation), and returns once it answers anything (a HEAD without a
    /// handler is a 501: an answer).
    func pythonReplica(_ name: String, methods: String) async throws -> PythonReplica {
        let port = try freeLoopbackPort()
        let scriptPath = "\(testDirectory)/\(keys.cluster)-\(name).py"
        let body = methods.split(separator: "\n", omittingEmptySubsequences: false).map { "    " + $0 }.joined(separator: "\n")
        try """
            import http.server, sys
            class H(http.server.BaseHTTPRequestHandler):
                protocol_version = "HTTP/1.1"
                def log_message(self, *args):
                    pass
            \(body)
            http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()

            """.write(toFile: scriptPath, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", scriptPath, "\(port)"]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let replica = PythonReplica(process: process, address: "127.0.0.1:\(port)")
        do {
            try await poll("the Python replica \(name)") { (try? await httpRequest(replica.address, method: "HEAD", path: "/")) != nil }
        } catch {
            replica.stop()
            throw error
        }
        return replica
    }

    /// Writes and announces snapshots that route every path to backend `api` on `addresses`
    /// (tests without a controller).
    func routeEverything(to addresses: String..., version: Int = 1,
                         config: RoutedBackendConfig = RoutedBackendConfig(routePrefix: "/", maxConcurrentQueries: 10)) async throws {
        let configs = Snapshot(epoch: 1, view: BackendConfigsView(version: version, backends: ["api": config]))
        let routing = Snapshot(epoch: 1, view: RoutingView(version: version, backends: ["api": addresses.enumerated().map { index, address in
            RoutedReplica(tag: "api#\(index + 1)", address: HostPort(address)!, node: "n1")
        }]))
        try await client.send("SET", keys.configsSnapshot, DocumentCodec.encode(configs))
        try await client.send("SET", keys.routingSnapshot, DocumentCodec.encode(routing))
        try await client.send("PUBLISH", keys.snapshots, DocumentCodec.encode(SnapshotNotice(kind: .configs, epoch: 1, version: version)))
        try await client.send("PUBLISH", keys.snapshots, DocumentCodec.encode(SnapshotNotice(kind: .routing, epoch: 1, version: version)))
    }

    @Test func requestsSpreadOverEveryReplicaAndTwoPrefixesRouteApart() async throws {
        let leader = try controller("c1")
        let agent = try node()
        let front = try await router()
        defer { leader.kill(); agent.kill(SIGTERM); front.process.kill() }
        #expect(try await request(backend("api", replicas: 3, route: "/api"), goal: "g-1") == GoalOutcome(goal: "g-1"))
        #expect(try await request(backend("web", replicas: 1, route: "/web"), goal: "g-2") == GoalOutcome(goal: "g-2"))
        try await awaitRouted(front, backend: "api", count: 3)
        try await awaitRouted(front, backend: "web", count: 1)

        var seen: [String: Int] = [:]
        for _ in 0..<60 {
            let response = try await httpRequest(front.address, path: "/api/x")
            #expect(response.status == 200)
            seen[response.headers["x-swerve-replica"] ?? "?", default: 0] += 1
        }
        #expect(Set(seen.keys) == Set(try await routedReplicas("api").keys), "every replica served: \(seen)")
        let web = try await httpRequest(front.address, path: "/web")
        #expect(web.status == 200 && web.headers["x-swerve-replica"]?.hasPrefix("web#") == true)

        let missing = try await httpRequest(front.address, path: "/nowhere?x=1")
        #expect(missing.status == 404)
        #expect(String(decoding: missing.body, as: UTF8.self) == "no backend serves /nowhere (routes: /api, /web)\n")

        #expect(try await request(.updateBackendConfig(tag: "web", patch: BackendConfigPatch(numReplicas: 0)), goal: "g-3") == GoalOutcome(goal: "g-3"))
        try await awaitRouted(front, backend: "web", count: 0)
        let empty = try await httpRequest(front.address, path: "/web")
        #expect(empty.status == 503 && String(decoding: empty.body, as: UTF8.self) == "backend web has no running replica\n")
    }

    @Test func aSaturatedBackendQueuesThenAnswers503WithRetryAfter() async throws {
        let leader = try controller("c1")
        let agent = try node()
        let front = try await router(["--queue-limit", "1", "--queue-timeout-ms", "20000"])
        defer { leader.kill(); agent.kill(SIGTERM); front.process.kill() }
        #expect(try await request(backend("slow", replicas: 1, route: "/slow", builtin: "sleep", maxConcurrentQueries: 1), goal: "g-1") == GoalOutcome(goal: "g-1"))
        try await awaitRouted(front, backend: "slow", count: 1)
        // One in flight (the limit), one queued (the bound), then the third is refused at once.
        let first = Task { try await httpRequest(front.address, path: "/slow?ms=1500") }
        try await awaitInFlight(front)
        let second = Task { try await httpRequest(front.address, path: "/slow?ms=10") }
        try await awaitQueued(front, backend: "slow", count: 1)
        let third = try await httpRequest(front.address, path: "/slow?ms=10")
        #expect(third.status == 503 && third.headers["retry-after"] == "1")
        #expect(String(decoding: third.body, as: UTF8.self).contains("backend slow is saturated"))
        #expect(try await first.value.status == 200)
        #expect(try await second.value.status == 200, "the queued request went when the slot freed")
    }

    func awaitQueued(_ router: RunningRouter, backend: String, count: Int) async throws {
        try await poll("\(count) queued for \(backend)") { try await routed(router, backend)?["queued"] as? Int == count }
    }

    /// A snapshot written with no notice at all (as if every message were lost) reaches the
    /// router through its periodic re-read.
    @Test func aLostNotificationIsHealedByTheReRead() async throws {
        let front = try await router(["--resync-ms", "100"])
        defer { front.process.kill() }
        let configs = Snapshot(epoch: 7, view: BackendConfigsView(version: 3, backends: ["api": RoutedBackendConfig(routePrefix: "/api", maxConcurrentQueries: 5)]))
        let routing = Snapshot(epoch: 7, view: RoutingView(version: 4, backends: ["api": [RoutedReplica(tag: "api#1", address: HostPort(host: "127.0.0.1", port: 9), node: "n1")]]))
        try await client.send("SET", keys.configsSnapshot, DocumentCodec.encode(configs))
        try await client.send("SET", keys.routingSnapshot, DocumentCodec.encode(routing))
        try await awaitRouted(front, backend: "api", count: 1)
        let page = try await routesPage(front)
        #expect((page["routing"] as? [String: Any])?["version"] as? Int == 4 && (page["routing"] as? [String: Any])?["epoch"] as? Int == 7)

        // A notice of an older term (a deposed leader's, which fencing kept out of the key)
        // changes nothing: the key still holds epoch 7.
        try await client.send("PUBLISH", keys.snapshots, DocumentCodec.encode(SnapshotNotice(kind: .routing, epoch: 6, version: 99)))
        try await Task.sleep(for: .milliseconds(300)) // three re-reads: time is what is under test
        #expect(((try await routesPage(front)["routing"]) as? [String: Any])?["version"] as? Int == 4)

        // The key itself went back (Redis restored from an older file): the router follows it,
        // or it would refuse every snapshot the next leader writes.
        let restored = Snapshot(epoch: 6, view: RoutingView(version: 2, backends: ["api": []]))
        try await client.send("SET", keys.routingSnapshot, DocumentCodec.encode(restored))
        try await poll("the router follows the restored snapshot") {
            ((try await routesPage(front)["routing"]) as? [String: Any])?["epoch"] as? Int == 6
        }
    }

    /// A notice that skips a version (the one before it was dropped, with a configs notice)
    /// makes the router re-read both snapshots at once; the periodic re-read is out of reach.
    @Test func aNoticeWithASkippedVersionRereadsBothSnapshots() async throws {
        let front = try await router(["--resync-ms", "600000"])
        defer { front.process.kill() }
        func publish<View: Encodable>(_ snapshot: Snapshot<View>, at key: String, notice: SnapshotNotice?) async throws {
            try await client.send("SET", key, DocumentCodec.encode(snapshot))
            if let notice { try await client.send("PUBLISH", keys.snapshots, DocumentCodec.encode(notice)) }
        }
        let api = ["api": RoutedBackendConfig(routePrefix: "/api", maxConcurrentQueries: 5)]
        let apiReplicas = ["api": [RoutedReplica(tag: "api#1", address: HostPort(host: "127.0.0.1", port: 9), node: "n1")]]
        try await publish(Snapshot(epoch: 3, view: BackendConfigsView(version: 1, backends: api)), at: keys.configsSnapshot,
                          notice: SnapshotNotice(kind: .configs, epoch: 3, version: 1))
        try await publish(Snapshot(epoch: 3, view: RoutingView(version: 1, backends: apiReplicas)), at: keys.routingSnapshot,
                          notice: SnapshotNotice(kind: .routing, epoch: 3, version: 1))
        try await awaitRouted(front, backend: "api", count: 1)

        // Configs 2 (a new backend) and routing 2 are stored, their notices dropped; routing 3's
        // notice arrives. Reading only the routing snapshot would leave "web" without a route.
        var both = api
        both["web"] = RoutedBackendConfig(routePrefix: "/web", maxConcurrentQueries: 5)
        try await publish(Snapshot(epoch: 3, view: BackendConfigsView(version: 2, backends: both)), at: keys.configsSnapshot, notice: nil)
        var replicas = apiReplicas
        replicas["web"] = [RoutedReplica(tag: "web#1", address: HostPort(host: "127.0.0.1", port: 9), node: "n1")]
        try await publish(Snapshot(epoch: 3, view: RoutingView(version: 3, backends: replicas)), at: keys.routingSnapshot,
                          notice: SnapshotNotice(kind: .routing, epoch: 3, version: 3))
        try await awaitRouted(front, backend: "web", count: 1)
        let page = try await routesPage(front)
        #expect((page["configs"] as? [String: Any])?["version"] as? Int == 2)
        #expect((page["routing"] as? [String: Any])?["version"] as? Int == 3)
    }

    /// A delta that follows the router's view is applied from its notice alone; one that shows a
    /// gap makes the router read the snapshot and the deltas stored after it; an unreadable
    /// delta in the list stops the chain without costing the view.
    @Test func deltasApplyInPlaceAndAGapHealsFromTheStoredList() async throws {
        let front = try await router(["--resync-ms", "600000"])
        defer { front.process.kill() }
        func view(_ version: Int, _ count: Int) -> RoutingView {
            RoutingView(version: version, backends: ["api": (1...count).map { RoutedReplica(tag: "api#\($0)", address: HostPort(host: "127.0.0.1", port: 9), node: "n1") }])
        }
        try await client.send("SET", keys.configsSnapshot, DocumentCodec.encode(Snapshot(epoch: 3, view: BackendConfigsView(version: 1, backends: ["api": RoutedBackendConfig(routePrefix: "/api", maxConcurrentQueries: 5)]))))
        try await client.send("SET", keys.routingSnapshot, DocumentCodec.encode(Snapshot(epoch: 3, view: view(1, 1))))
        try await client.send("PUBLISH", keys.snapshots, DocumentCodec.encode(SnapshotNotice(kind: .routing, epoch: 3, version: 1)))
        try await awaitRouted(front, backend: "api", count: 1)

        // Version 2 only on the channel: Redis holds nothing of it, so only the notice can bring it.
        try await client.send("PUBLISH", keys.snapshots, DocumentCodec.encode(SnapshotNotice(epoch: 3, delta: RoutingDelta(from: view(1, 1), to: view(2, 2)))))
        try await awaitRouted(front, backend: "api", count: 2)

        // Versions 2 to 4 stored after the snapshot; only 4's notice arrives: a gap, healed by the list.
        let stored = [RoutingDelta(from: view(1, 1), to: view(2, 2)), RoutingDelta(from: view(2, 2), to: view(3, 3)), RoutingDelta(from: view(3, 3), to: view(4, 4))]
        for delta in stored { try await client.send("RPUSH", keys.routingDeltas, DocumentCodec.encode(SnapshotNotice(epoch: 3, delta: delta))) }
        try await client.send("PUBLISH", keys.snapshots, DocumentCodec.encode(SnapshotNotice(epoch: 3, delta: stored[2])))
        try await awaitRouted(front, backend: "api", count: 4)
        #expect(((try await routesPage(front)["routing"]) as? [String: Any])?["version"] as? Int == 4)

        // An unreadable delta, then version 6's notice (a gap): the chain stops at version 4 and
        // the router keeps serving it; the next whole snapshot moves it on.
        try await client.send("RPUSH", keys.routingDeltas, "{not a delta")
        try await client.send("PUBLISH", keys.snapshots, DocumentCodec.encode(SnapshotNotice(epoch: 3, delta: RoutingDelta(from: view(5, 5), to: view(6, 6)))))
        try await client.send("SET", keys.routingSnapshot, DocumentCodec.encode(Snapshot(epoch: 3, view: view(7, 5))))
        try await client.send("DEL", keys.routingDeltas)
        try await client.send("PUBLISH", keys.snapshots, DocumentCodec.encode(SnapshotNotice(kind: .routing, epoch: 3, version: 7)))
        try await awaitRouted(front, backend: "api", count: 5)
    }

    /// A replica that refuses connections (nothing was sent) costs a retry on another, not a
    /// failed request. (No controller here: the test writes the snapshots itself.)
    /// A live replica: python3's file server on a free loopback port, started and answering.
    /// Stop it with SIGKILL (a child of the test runner may inherit SIGTERM ignored).
    func pythonFileServer() async throws -> (port: Int, process: Process) {
        let port = try freeLoopbackPort()
        let live = Process()
        live.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        // Serving the scratch directory, which names it on its command line: ops/test kills
        // whatever does when the run ends, even if this test could not.
        live.arguments = ["python3", "-m", "http.server", "--bind", "127.0.0.1", "--directory", testDirectory, "\(port)"]
        live.standardOutput = FileHandle.nullDevice
        live.standardError = FileHandle.nullDevice
        try live.run()
        do {
            try await poll("python3's server") { (try? await httpRequest("127.0.0.1:\(port)", path: "/")) != nil }
        } catch {
            kill(live.processIdentifier, SIGKILL)
            live.waitUntilExit()
            throw error
        }
        return (port, live)
    }

    @Test func aRefusedConnectIsRetriedOnAnotherReplica() async throws {
        let (port, live) = try await pythonFileServer()
        defer { kill(live.processIdentifier, SIGKILL); live.waitUntilExit() }
        let front = try await router()
        defer { front.process.kill() }
        let dead = "127.0.0.1:\(try freeLoopbackPort())"
        try await routeEverything(to: dead, "127.0.0.1:\(port)")
        try await awaitRouted(front, backend: "api", count: 2)
        for _ in 0..<20 {
            #expect(try await httpRequest(front.address, path: "/").status == 200)
        }
        let retried = "backend=\"api\",reason=\"connect_failed\""
        // Passive health: the first refusal ejects the dead replica; no later request tries it.
        #expect(try await counter(front, "swerve_router_retries_total", retried) == 1, "the dead replica was tried once and the request retried")
        #expect(try await counter(front, "swerve_router_ejections_total", "backend=\"api\"") == 1)
        // A newer snapshot that still lists it brings it back: it is tried (and ejected) again.
        try await routeEverything(to: dead, "127.0.0.1:\(port)", version: 2)
        try await poll("routing view 2") { ((try await routesPage(front)["routing"] as? [String: Any])?["version"] as? Int) == 2 }
        for _ in 0..<20 {
            #expect(try await httpRequest(front.address, path: "/").status == 200)
        }
        #expect(try await counter(front, "swerve_router_ejections_total", "backend=\"api\"") == 2)
        #expect(try await counter(front, "swerve_router_retries_total", retried) == 2)
    }

    /// Every replica the table lists is dead (their node agent was killed with them): a request
    /// waits for the table that lists the replacement instead of failing, within the queue
    /// timeout; past it, the 502 that names what was tried.
    @Test func whenEveryReplicaRefusesARequestWaitsForTheNextTable() async throws {
        let (port, live) = try await pythonFileServer()
        defer { kill(live.processIdentifier, SIGKILL); live.waitUntilExit() }
        let front = try await router(["--queue-timeout-ms", "20000"])
        defer { front.process.kill() }
        let dead = "127.0.0.1:\(try freeLoopbackPort())"
        try await routeEverything(to: dead)
        try await awaitRouted(front, backend: "api", count: 1)
        async let answer = httpRequest(front.address, path: "/")
        // It tried the dead replica and now waits (the connect retry is counted).
        try await poll("the dead replica tried") {
            try await counter(front, "swerve_router_retries_total", "backend=\"api\",reason=\"connect_failed\"") == 1
        }
        try await routeEverything(to: dead, "127.0.0.1:\(port)", version: 2)
        #expect(try await answer.status == 200, "served by the replica the next table listed")

        let impatient = try await router(["--queue-timeout-ms", "300"])
        defer { impatient.process.kill() }
        try await routeEverything(to: dead, version: 3)
        try await awaitRouted(impatient, backend: "api", count: 1)
        let refused = try await httpRequest(impatient.address, path: "/")
        #expect(refused.status == 502 && String(decoding: refused.body, as: UTF8.self).contains("each refused the connection or was draining"))
    }

    /// What a replica receives: `X-Forwarded-For` (appended) and `X-Request-Id` (passed through,
    /// or made); and a HEAD answered without a body. The replica is a small Python server that
    /// answers with the headers it got.
    @Test func forwardedHeadersAndHeadRequests() async throws {
        let replica = try await pythonReplica("headers", methods: """
            def do_GET(self):
                body = "".join(k.lower() + ": " + v + chr(10) for k, v in self.headers.items()).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            def do_HEAD(self):
                self.send_response(200)
                self.send_header("Content-Length", "1234")
                self.end_headers()
            """)
        defer { replica.stop() }
        let front = try await router()
        defer { front.process.kill() }
        try await routeEverything(to: replica.address)
        try await awaitRouted(front, backend: "api", count: 1)

        func received(_ headers: [String: String]) async throws -> [String: String] {
            let response = try await httpRequest(front.address, path: "/x", headers: headers)
            #expect(response.status == 200)
            var seen: [String: String] = [:]
            for line in String(decoding: response.body, as: UTF8.self).split(separator: "\n") {
                let parts = line.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                if parts.count == 2 { seen[parts[0]] = parts[1] }
            }
            return seen
        }
        let passed = try await received(["X-Request-Id": "req-42", "X-Forwarded-For": "10.1.2.3"])
        #expect(passed["x-request-id"] == "req-42")
        #expect(passed["x-forwarded-for"] == "10.1.2.3, 127.0.0.1", "the client's address appended")
        let made = try await received([:])
        #expect((made["x-request-id"]?.count ?? 0) > 8 && made["x-forwarded-for"] == "127.0.0.1")
        let another = try await received([:])
        #expect(another["x-request-id"] != made["x-request-id"], "each request gets its own id")

        let head = try await httpRequest(front.address, method: "HEAD", path: "/x")
        #expect(head.status == 200 && head.headers["content-length"] == "1234" && head.body.isEmpty)
        #expect(try await httpRequest(front.address, path: "/x").status == 200, "the pooled connection is still usable after a HEAD")
    }

    /// A replica that closes a kept-alive connection as the next request arrives (an idle
    /// timeout racing the router's reuse): an idempotent request without a body is sent again
    /// on a fresh connection; a POST, which may have been acted on, gets a 502 that says so.
    @Test func aStalePooledConnectionRepeatsOnlyIdempotentRequests() async throws {
        let replica = try await pythonReplica("stale", methods: """
            served = 0
            def answer(self):
                self.served += 1
                if self.served == 2:  # the second request on a connection: close, say nothing
                    self.close_connection = True
                    return
                body = b"fresh"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            do_GET = answer
            do_POST = answer
            """)
        defer { replica.stop() }
        let front = try await router()
        defer { front.process.kill() }
        try await routeEverything(to: replica.address)
        try await awaitRouted(front, backend: "api", count: 1)

        // Each of the router's event loops keeps its own pool: of six GETs, at least four go
        // to a loop that served one before, so they find a pooled connection the replica drops.
        for index in 0..<6 {
            let response = try await httpRequest(front.address, path: "/get/\(index)")
            #expect(response.status == 200, "a dropped pooled connection is followed by a fresh one")
        }
        // Every loop now has a pooled connection (or gets one from its first POST).
        var posts: [Int] = []
        for index in 0..<3 {
            let response = try await httpRequest(front.address, method: "POST", path: "/post/\(index)")
            posts.append(response.status)
            if response.status == 502 {
                #expect(String(decoding: response.body, as: UTF8.self).contains("closed the connection before answering"))
            }
        }
        #expect(posts.contains(502) && posts.allSatisfy { $0 == 200 || $0 == 502 }, "a POST is not repeated: the replica may have acted on it (\(posts))")
    }

    /// A replica that closes every connection unanswered: each request gets the router's 502,
    /// and the client's kept-alive connection goes on carrying requests (after a 502 on a
    /// freshly made replica connection it used to stop being read: seen in chaos runs as a
    /// request timing out after a worker was killed).
    @Test func theRoutersOwn502LeavesAKeptAliveConnectionUsable() async throws {
        let mute = try await pythonReplica("mute", methods: """
            def do_GET(self):
                self.close_connection = True
            """)
        defer { mute.stop() }
        let front = try await router()
        defer { front.process.kill() }
        try await routeEverything(to: mute.address)
        try await awaitRouted(front, backend: "api", count: 1)
        #expect(try await httpKeepAlive(front.address, [("GET", "/a"), ("GET", "/b"), ("GET", "/c")]) == [502, 502, 502])
    }

    /// A draining replica turns requests away with `503` and `X-Swerve-Unprocessed` before it
    /// runs anything: the router sends a bodiless request to another replica; one whose body
    /// it already streamed gets the 503 (with its Retry-After) as it is.
    @Test func aDrainingReplicasRefusalIsSentElsewhere() async throws {
        let draining = try await pythonReplica("draining", methods: """
            def refuse(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                body = b"api#1 is draining" + bytes([10])
                self.send_response(503)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Retry-After", "0")
                self.send_header("X-Swerve-Unprocessed", "draining")
                self.end_headers()
                self.wfile.write(body)
                self.close_connection = True
            do_GET = refuse
            do_POST = refuse
            def do_HEAD(self):
                self.send_response(200)
                self.end_headers()
            """)
        defer { draining.stop() }
        let live = try await pythonReplica("live", methods: """
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
            """)
        defer { live.stop() }
        let front = try await router()
        defer { front.process.kill() }
        try await routeEverything(to: draining.address, live.address)
        try await awaitRouted(front, backend: "api", count: 2)
        for index in 0..<20 {
            let response = try await httpRequest(front.address, path: "/get/\(index)")
            #expect(response.status == 200 && response.body == Array("ok".utf8), "answered by the live replica")
        }
        let metrics = String(decoding: try await httpRequest(front.admin, path: "/metrics").body, as: UTF8.self)
        let retries = metrics.split(separator: "\n").first { $0.hasPrefix("swerve_router_retries_total{backend=\"api\",reason=\"unprocessed\"}") }
            .flatMap { Double($0.split(separator: " ").last ?? "") } ?? 0
        #expect(retries >= 1, "the draining replica was chosen and the request sent elsewhere")

        // Only the draining replica left: a POST whose body went out gets its 503 as it is.
        try await routeEverything(to: draining.address, version: 2)
        try await awaitRouted(front, backend: "api", count: 1)
        let posted = try await httpRequest(front.address, method: "POST", path: "/post", body: Array("payload".utf8))
        #expect(posted.status == 503 && posted.headers["retry-after"] == "0")
        #expect(String(decoding: posted.body, as: UTF8.self) == "api#1 is draining\n")
    }

    /// A steady client load while the backend scales 3 → 1 and the leader is SIGKILLed: no
    /// request fails.
    @Test func scalingDownAndKillingTheLeaderUnderLoadFailsNoRequest() async throws {
        let first = try controller("c1")
        try await awaitLeader("c1")
        let second = try controller("c2")
        let agent = try node()
        let front = try await router()
        defer { first.kill(); second.kill(); agent.kill(SIGTERM); front.process.kill() }
        #expect(try await request(backend("api", replicas: 3, route: "/api"), goal: "g-1") == GoalOutcome(goal: "g-1"))
        try await awaitRouted(front, backend: "api", count: 3)

        let load = LoadGenerator(address: front.address, path: "/api", clients: 4)
        load.start()
        try await load.awaitCompleted(50)
        #expect(try await request(.updateBackendConfig(tag: "api", patch: BackendConfigPatch(numReplicas: 1)), goal: "g-2") == GoalOutcome(goal: "g-2"))
        try await awaitRouted(front, backend: "api", count: 1)
        try await load.awaitCompleted(load.completed + 50)
        first.kill(SIGKILL)
        #expect(try await request(.updateBackendConfig(tag: "api", patch: BackendConfigPatch(numReplicas: 2)), goal: "g-3") == GoalOutcome(goal: "g-3"))
        try await awaitRouted(front, backend: "api", count: 2)
        try await load.awaitCompleted(load.completed + 50)
        let (completed, failures) = await load.stop()
        #expect(completed > 150)
        #expect(failures.isEmpty, "\(failures.count) of \(completed) failed: \(failures.prefix(5))")
    }

    @Test func aRollingUpdateUnderLoadFailsNoRequest() async throws {
        let leader = try controller("c1")
        let agent = try node()
        let front = try await router()
        defer { leader.kill(); agent.kill(SIGTERM); front.process.kill() }
        let echo = { (greeting: String) -> Request.Operation in
            .createBackend(tag: "api", config: BackendConfig(numReplicas: 3, gracefulShutdownWaitLoopS: 0.3, routePrefix: "/api"),
                           replicaConfig: ReplicaConfig(workload: .builtin(name: "echo", options: ["greeting": .string(greeting)]), resources: Resources(cpu: 0.1)))
        }
        #expect(try await request(echo("v1"), goal: "g-1") == GoalOutcome(goal: "g-1"))
        try await awaitRouted(front, backend: "api", count: 3)
        let before = Set(try await routedReplicas().keys)
        let load = LoadGenerator(address: front.address, path: "/api", clients: 4)
        load.start()
        try await load.awaitCompleted(50)
        #expect(try await request(echo("v2"), goal: "g-2") == GoalOutcome(goal: "g-2"))
        let after = Set(try await routedReplicas().keys)
        #expect(after.count == 3 && after.isDisjoint(with: before), "every replica was replaced")
        try await awaitRouted(front, backend: "api", count: 3)
        try await load.awaitCompleted(load.completed + 50)
        let (completed, failures) = await load.stop()
        #expect(failures.isEmpty, "\(failures.count) of \(completed) failed: \(failures.prefix(5))")
    }

    /// A worker SIGKILLed under load costs no GET: the ones in flight on it are idempotent, so
    /// the router sends them to the other replica; the leader replaces it and traffic goes on.
    @Test func aKilledWorkersInFlightGETsAreAnsweredByAnotherReplica() async throws {
        let leader = try controller("c1")
        let agent = try node()
        let front = try await router()
        defer { leader.kill(); agent.kill(SIGTERM); front.process.kill() }
        #expect(try await request(backend("api", replicas: 2, route: "/api"), goal: "g-1") == GoalOutcome(goal: "g-1"))
        try await awaitRouted(front, backend: "api", count: 2)
        let victim = try #require(try await routedReplicas().keys.sorted().first)
        let victimPid = try #require(try await pid(victim))
        let load = LoadGenerator(address: front.address, path: "/api", clients: 4)
        load.start()
        try await load.awaitCompleted(50)
        kill(victimPid, SIGKILL)
        // Replaced: two routed replicas again, the victim not among them.
        try await poll("a replacement for \(victim)") {
            let routed = try await routedReplicas()
            return routed.count == 2 && routed[victim] == nil
        }
        try await awaitRouted(front, backend: "api", count: 2)
        try await load.awaitCompleted(load.completed + 100)
        let (completed, failures) = await load.stop()
        #expect(failures.isEmpty, "\(failures.count) of \(completed) failed: \(failures)")
    }

    /// 32 MiB up and back down through the router: its peak memory grows by far less than the
    /// body (it streams through a bounded buffer). Small enough not to starve the other tests
    /// of CPU on two cores.
    @Test func largeBodiesStreamThroughWithoutBeingBuffered() async throws {
        let leader = try controller("c1")
        let agent = try node()
        let front = try await router()
        defer { leader.kill(); agent.kill(SIGTERM); front.process.kill() }
        #expect(try await request(backend("api", replicas: 1, route: "/api"), goal: "g-1") == GoalOutcome(goal: "g-1"))
        try await awaitRouted(front, backend: "api", count: 1)
        let tag = try #require(try await routedReplicas().keys.first)
        let worker = try #require(try await pid(tag))
        func peakKiB(_ pid: Int32) throws -> Int {
            let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
            return status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") }.flatMap { Int($0.split(separator: " ")[1]) } ?? Int.max
        }
        #expect(try await httpRequest(front.address, method: "POST", path: "/api", body: Array("warm up".utf8)).status == 200)
        let before = (router: try peakKiB(front.process.process.processIdentifier), worker: try peakKiB(worker))
        let body = [UInt8](repeating: 7, count: 32 << 20)
        let response = try await httpRequest(front.address, method: "POST", path: "/api", body: body)
        #expect(response.status == 200 && response.body.count == body.count, "the echo came back whole")
        let growth = (router: try peakKiB(front.process.process.processIdentifier) - before.router, worker: try peakKiB(worker) - before.worker)
        #expect(growth.router < 12 << 10, "the router's peak memory grew by \(growth.router) KiB for a 32 MiB body each way")
        #expect(growth.worker < 12 << 10, "the echo worker's peak memory grew by \(growth.worker) KiB for a 32 MiB body: it streams")
    }

    @Test func sigtermFinishesInFlightRequestsThenExits() async throws {
        let leader = try controller("c1")
        let agent = try node()
        let front = try await router()
        defer { leader.kill(); agent.kill(SIGTERM) }
        #expect(try await request(backend("slow", replicas: 1, route: "/slow", builtin: "sleep"), goal: "g-1") == GoalOutcome(goal: "g-1"))
        try await awaitRouted(front, backend: "slow", count: 1)
        let slow = Task { try await httpRequest(front.address, path: "/slow?ms=800") }
        try await awaitInFlight(front)
        front.process.kill(SIGTERM)
        #expect(try await slow.value.status == 200, "the in-flight request finished")
        let (status, _) = await front.process.exit()
        #expect(status == 0)
        await #expect(throws: (any Error).self) { _ = try await httpRequest(front.address, path: "/slow") }
    }

    func awaitInFlight(_ router: RunningRouter) async throws {
        try await poll("a request in flight") {
            let metrics = String(decoding: try await httpRequest(router.admin, path: "/metrics").body, as: UTF8.self)
            return metrics.split(separator: "\n").contains { $0.hasPrefix("swerve_router_in_flight{") && $0.hasSuffix(" 1.0") }
        }
    }
}

/// Clients sending requests one after another (about 5 ms apart), each recording every failure.
final class LoadGenerator: Sendable {
    let address: String
    let path: String
    let clients: Int
    private let state = Mutex<(completed: Int, failures: [String], stopped: Bool)>((0, [], false))
    private let tasks = Mutex<[Task<Void, Never>]>([])

    init(address: String, path: String, clients: Int) {
        self.address = address
        self.path = path
        self.clients = clients
    }

    var completed: Int { state.withLock { $0.completed } }

    func start() {
        let started = (0..<clients).map { _ in
            Task { [self] in
                while !state.withLock({ $0.stopped }) {
                    do {
                        let response = try await httpRequest(address, path: path)
                        state.withLock {
                            $0.completed += 1
                            if response.status != 200 { $0.failures.append("HTTP \(response.status): \(String(decoding: response.body, as: UTF8.self))") }
                        }
                    } catch {
                        state.withLock { $0.completed += 1; $0.failures.append("\(error)") }
                    }
                    // A steady load, not a flood: the suite shares two cores with other tests
                    // whose leases must be renewed on time.
                    try? await Task.sleep(for: .milliseconds(5))
                }
            }
        }
        tasks.withLock { $0 = started }
    }

    /// Returns once `count` requests completed.
    func awaitCompleted(_ count: Int) async throws {
        let deadline = ContinuousClock.now + .seconds(20)
        while completed < count {
            guard ContinuousClock.now < deadline else { throw TestFailure("the load stalled at \(completed) requests") }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    func stop() async -> (completed: Int, failures: [String]) {
        state.withLock { $0.stopped = true }
        for task in tasks.withLock({ $0 }) { await task.value }
        return state.withLock { ($0.completed, $0.failures) }
    }
}
