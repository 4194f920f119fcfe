import Foundation
import Glibc
import SwerveCore
import SwerveProtocol
import SwerveRedis
import SwerveTestSupport
import Testing

/// `--metrics-address`: Prometheus text over HTTP, from the leader and from a follower.
extension ControllerProcesses {
    /// The samples of a scrape, by series (`name` or `name{labels}`), without histogram buckets.
    func scrape(_ address: String) async throws -> [String: Double] {
        let response = try await httpRequest(address, path: "/metrics")
        #expect(response.status == 200 && response.headers["content-type"]?.hasPrefix("text/plain; version=0.0.4") == true)
        var samples: [String: Double] = [:]
        for line in String(decoding: response.body, as: UTF8.self).split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            samples[String(line[..<space])] = value
        }
        return samples
    }

    /// Scrapes until `condition` holds or 5 s passed: a leader records a step's metrics once its
    /// writes returned, just after the goal went out to the test.
    func scrape(_ address: String, until condition: ([String: Double]) -> Bool) async throws -> [String: Double] {
        let deadline = ContinuousClock.now + .seconds(5)
        var samples = try await scrape(address)
        while !condition(samples), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
            samples = try await scrape(address)
        }
        return samples
    }

    /// Scrapes until the endpoint answers (a process that has just started may not listen yet).
    func scrapeWhenUp(_ address: String) async throws -> [String: Double] {
        let started = ContinuousClock.now
        while true {
            do { return try await scrape(address) } catch where ContinuousClock.now - started < .seconds(10) {
                try await Task.sleep(for: .milliseconds(20))
            }
        }
    }

    @Test func theLeaderAndAFollowerExportTheirMetrics() async throws {
        let first = try SwerveProcess(["controller", "--redis", url, "--cluster", keys.cluster, "--id", "c1", "--metrics-address", "127.0.0.1:0"],
                                      environment: ["SWERVE_LOG_LEVEL": "warning"])
        try await awaitLeader("c1")
        let followerAddress = "127.0.0.1:\(try freeLoopbackPort())"
        let second = try SwerveProcess(["controller", "--redis", url, "--cluster", keys.cluster, "--id", "c2"],
                                       environment: ["SWERVE_LOG_LEVEL": "warning", "SWERVE_METRICS_ADDRESS": followerAddress])
        let agent = try node()
        defer { first.kill(); second.kill(); agent.kill(SIGTERM) }

        let record = try DocumentCodec.decode(LeaderRecord.self, from: try #require(try await client.send("GET", keys.leader).bytes), source: keys.leader)
        let leaderAddress = try #require(record.address, "the leader record shows where its metrics are")
        #expect(try await request(.createBackend(tag: "api", config: BackendConfig(numReplicas: 2),
                                                 replicaConfig: ReplicaConfig(workload: .builtin(name: "echo"), resources: Resources(cpu: 1))), goal: "g-1") == GoalOutcome(goal: "g-1"))
        let leading = try await scrape(leaderAddress, until: { $0["swerve_controller_requests_applied_total"] == 1 })
        #expect(leading["swerve_controller_is_leader"] == 1 && leading["swerve_controller_epoch"] == Double(record.epoch))
        #expect(leading["swerve_controller_requests_applied_total"] == 1)
        #expect(leading["swerve_controller_replicas{state=\"RUNNING\"}"] == 2 && leading["swerve_controller_replicas{state=\"STARTING\"}"] == 0)
        #expect((leading["swerve_controller_reconcile_duration_seconds_count"] ?? 0) > 0)
        #expect(leading["swerve_controller_fenced_writes_refused_total"] == 0)
        // At least the checkpoint that created the backend, which alone is hundreds of bytes.
        #expect((leading["swerve_controller_written_bytes_total{call=\"writeCheckpoint\"}"] ?? 0) > 500)
        #expect((leading["swerve_controller_written_bytes_total{call=\"assign\"}"] ?? 0) > 0)

        let following = try await scrapeWhenUp(followerAddress)
        #expect(following["swerve_controller_is_leader"] == 0 && following["swerve_controller_replicas{state=\"RUNNING\"}"] == 0)
        #expect(!following.keys.contains { $0.hasPrefix("swerve_controller_written_bytes_total") }, "a follower writes nothing fenced")

        try await awaitLeader("c2", after: { first.kill(SIGTERM) })
        // A goal settled by the new leader: it has loaded the checkpoint by then.
        #expect(try await request(.updateBackendConfig(tag: "api", patch: BackendConfigPatch(numReplicas: 2)), goal: "g-2") == GoalOutcome(goal: "g-2"))
        let taken = try await scrape(followerAddress, until: { $0["swerve_controller_requests_applied_total"] == 1 })
        #expect(taken["swerve_controller_is_leader"] == 1 && (taken["swerve_controller_epoch"] ?? 0) > Double(record.epoch))
        #expect(taken["swerve_controller_replicas{state=\"RUNNING\"}"] == 2, "the new leader counts the adopted replicas")
        #expect(taken["swerve_controller_requests_applied_total"] == 1, "counted by the leader that applied it")
        #expect(try await httpRequest(followerAddress, path: "/nope").status == 404)
    }
}
