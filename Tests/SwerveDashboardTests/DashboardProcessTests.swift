import Foundation
import Glibc
import Logging
import SwerveCore
import SwerveDashboard
import SwerveProtocol
import SwerveRedis
import SwerveTestSupport
import Testing

/// A real `swerve dashboard` in front of a real controller: what it answers over HTTP. (The
/// page itself, live, is checked in headless Chromium by ops/dashboard-test.)
@Suite(.timeLimit(.minutes(1))) struct DashboardProcesses: ClusterTest {
    let url: String
    let keys: ClusterKeys
    let client: RedisClient
    let logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }

    init() throws {
        (url, keys, client) = try TestCluster.make(prefix: "d")
    }

    func dashboard() async throws -> (process: SwerveProcess, address: String) {
        let process = try SwerveProcess(["dashboard", "--redis", url, "--cluster", keys.cluster, "--listen", "127.0.0.1:0"],
                                        environment: ["SWERVE_LOG_LEVEL": "info", "SWERVE_LOG_FORMAT": "json"], captureOutput: true)
        let line = try await process.nextOutputLine()
        guard line.hasPrefix("dashboard http://") else { throw TestFailure("unexpected first line: \(line)") }
        return (process, String(line.dropFirst("dashboard http://".count).dropLast()))
    }

    @Test func routersReportTrafficAndTheDashboardShowsItsRate() async throws {
        let leader = try controller("c1")
        let agent = try node()
        let router = try SwerveProcess(["router", "--redis", url, "--cluster", keys.cluster, "--listen", "127.0.0.1:0"],
                                       environment: ["SWERVE_LOG_LEVEL": "warning"], captureOutput: true)
        defer { leader.kill(); agent.kill(SIGTERM); router.kill() }
        let listen = String(try await router.nextOutputLine().split(separator: " ")[1])
        let create = Request.Operation.createBackend(tag: "api", config: BackendConfig(numReplicas: 1, routePrefix: "/api"),
                                                     replicaConfig: ReplicaConfig(workload: .builtin(name: "echo"), resources: Resources(cpu: 0.1)))
        #expect(try await request(create, goal: "g-1") == GoalOutcome(goal: "g-1"))
        try await poll("the router to serve /api") { try await httpRequest(listen, path: "/api/x").status == 200 }

        // The report counts every request, each in a latency bucket.
        for _ in 0..<20 { _ = try await httpRequest(listen, path: "/api/x") }
        var report: RouterTrafficReport?
        try await poll("a traffic report counting the requests", every: .milliseconds(50)) {
            let ids = try await client.send("ZRANGE", keys.routerTraffics, 0, -1).array?.compactMap(\.string) ?? []
            guard ids.count == 1, let bytes = try await client.send("GET", keys.routerTraffic(ids[0])).bytes else { return false }
            report = try DocumentCodec.decode(RouterTrafficReport.self, from: bytes, source: "report")
            return (report?.backends["api"]?.requests ?? 0) >= 21
        }
        let counted = try #require(report?.backends["api"])
        #expect(counted.errors == 0 && counted.buckets.reduce(0, +) == counted.requests && report?.problems == nil)
        #expect(try await client.send("PTTL", keys.routerTraffic(try #require(report?.router))).integer ?? 0 > 0, "it expires")

        // A second report with more requests: the dashboard has a rate.
        let (dashboard, address) = try await dashboard()
        defer { dashboard.kill() }
        _ = try await httpRequest(address, path: "/api/state") // its first look: one report per router, no rate yet
        try await poll("a request rate for api on the dashboard", every: .milliseconds(50)) {
            _ = try await httpRequest(listen, path: "/api/x")
            let state = try JSONDecoder().decode(DashboardSnapshot.self, from: Data(try await httpRequest(address, path: "/api/state").body))
            return (state.backends.first { $0.tag == "api" }?.traffic?.requestsPerSecond ?? 0) > 0
        }
    }

    @Test func theStateNamesTheLeaderAndThePageComesWithItsGuards() async throws {
        let leader = try controller("c1")
        defer { leader.kill() }
        try await awaitLeader("c1")
        let (dashboard, address) = try await dashboard()
        defer { dashboard.kill() }

        let state = try await httpRequest(address, path: "/api/state")
        #expect(state.status == 200 && state.headers["content-type"] == "application/json")
        let snapshot = try JSONDecoder().decode(DashboardSnapshot.self, from: Data(state.body))
        #expect(snapshot.cluster == keys.cluster && snapshot.leader?.id == "c1")

        let page = try await httpRequest(address, path: "/")
        #expect(page.status == 200 && String(decoding: page.body, as: UTF8.self).contains("<script src=\"/app.js\""))
        #expect(page.headers["content-security-policy"]?.contains("default-src 'self'") == true)
        #expect(page.headers["x-content-type-options"] == "nosniff" && page.headers["x-frame-options"] == "DENY")
        #expect(page.headers["access-control-allow-origin"] == nil, "no other site may read it")
        #expect(try await httpRequest(address, path: "/app.js").headers["content-type"] == "text/javascript; charset=utf-8")

        let rebound = try await httpRequest(address, path: "/api/state", headers: ["Host": "attacker.example"])
        #expect(rebound.status == 421 && String(decoding: rebound.body, as: UTF8.self).contains("--allowed-host"),
                "a page whose DNS name was rebound to this address cannot read the cluster")
        let write = try await httpRequest(address, method: "POST", path: "/api/state")
        #expect(write.status == 405 && write.headers["allow"] == "GET, HEAD")
        #expect(try await httpRequest(address, path: "/nothing").status == 404)

        // SWERVE_LOG_FORMAT=json: every line it logged is one JSON object.
        let lines = dashboard.stderrSoFar.split(separator: "\n")
        #expect(!lines.isEmpty)
        for line in lines {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            #expect(object?["component"] as? String == "swerve.dashboard" && object?["level"] != nil && object?["message"] != nil, "\(line)")
        }
    }
}
