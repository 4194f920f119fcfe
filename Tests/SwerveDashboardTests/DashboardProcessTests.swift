import Foundation
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
