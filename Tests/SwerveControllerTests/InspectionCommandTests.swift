import Foundation
import Glibc
import Logging
import SwerveCore
import SwerveProtocol
import SwerveRedis
import SwerveTestSupport
import Testing

/// `swerve get`, `describe` and `events` against a real leader, node agent and workers.
@Suite(.timeLimit(.minutes(1))) struct InspectionCommands: ClusterTest {
    let url: String
    let keys: ClusterKeys
    let client: RedisClient
    let logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }

    init() throws {
        (url, keys, client) = try TestCluster.make(prefix: "inspect")
    }

    func cli(_ arguments: [String]) async throws -> (status: Int32, output: String, errors: String) {
        let process = try SwerveProcess(arguments, environment: ["SWERVE_REDIS_URL": url, "SWERVE_CLUSTER": keys.cluster], captureOutput: true)
        let (status, errors) = await process.exit()
        return (status, process.output, errors)
    }

    struct Replica: Decodable { var tag: String; var backend: String; var state: String; var node: String?; var pid: Int32? }
    struct Event: Decodable {
        struct Body: Decodable { var kind: String; var backend: String; var replica: String?; var message: String }
        var epoch: Int64; var controller: String; var event: Body
    }

    @Test func getDescribeAndEventsShowWhatTheLeaderRecorded() async throws {
        let leader = try controller("c1")
        let agent = try node("n1")
        defer { leader.kill(); agent.kill(SIGTERM) }
        #expect(try await cli(["apply", "--tag", "api", "--replicas", "2", "--builtin", "echo", "--cpu", "0.5", "--route", "/api"]).status == 0)

        let backends = try await cli(["get", "backends"])
        let lines = backends.output.split(separator: "\n")
        #expect(lines.first?.split(separator: " ", omittingEmptySubsequences: true) == ["NAME", "STATUS", "READY", "ROUTE", "VERSION"])
        #expect(lines.dropFirst().first?.split(separator: " ", omittingEmptySubsequences: true).prefix(4) == ["api", "healthy", "2/2", "/api"])

        let replicas = try JSONDecoder().decode([Replica].self, from: Data(try await cli(["get", "replicas", "-o", "json"]).output.utf8))
        #expect(replicas.count == 2 && replicas.allSatisfy { $0.state == "RUNNING" && $0.node == "n1" && $0.backend == "api" })
        for replica in replicas { #expect(try await pid(replica.tag) == replica.pid, "the pid the worker reported") }

        let nodes = try await cli(["get", "nodes", "-o", "yaml"])
        #expect(nodes.output.contains("node: n1") && nodes.output.contains("replicas: 2") && nodes.output.contains("cpuAssigned: 1"), "\(nodes.output)")
        let goals = try await cli(["get", "goals"])
        #expect(goals.output.split(separator: "\n").dropFirst().first?.contains("completed  api") == true, "\(goals.output)")

        let described = try await cli(["describe", "backend", "api"])
        #expect(described.output.contains("Status:        healthy: 2/2 running") && described.output.contains("Workload:      built-in echo"), "\(described.output)")
        #expect(described.output.contains("STARTING → RUNNING") && replicas.allSatisfy { described.output.contains($0.tag) })
        let ghost = try await cli(["describe", "backend", "ghost"])
        #expect(ghost.status == 1 && ghost.errors.contains("no backend named \"ghost\" in cluster \(keys.cluster) (backends: api)"), "\(ghost.errors)")

        // Every event so far came from the one leader, under its epoch: its election first.
        let events = try JSONDecoder().decode([Event].self, from: Data(try await cli(["events", "-o", "json"]).output.utf8))
        let epoch = try #require(try await client.send("GET", keys.epoch).string.flatMap { Int64($0) })
        #expect(events.map(\.event.kind).prefix(2) == ["LeaderElected", "BackendCreated"] && events.allSatisfy { $0.controller == "c1" && $0.epoch == epoch },
                "\(events.map(\.event.kind))")
        #expect(events.filter { $0.event.kind == "Replica" && $0.event.message.hasPrefix("STARTING → RUNNING") }.count == 2,
                "\(events.map { "\($0.event.replica ?? "-") \($0.event.message)" })")

        // --follow prints the last event, then new ones as they happen.
        let follower = try SwerveProcess(["events", "--follow", "-o", "json", "--last", "1", "--redis", url, "--cluster", keys.cluster],
                                         environment: [:], captureOutput: true)
        defer { follower.kill() }
        _ = try await follower.nextOutputLine()
        #expect(try await cli(["scale", "api", "3"]).status == 0)
        var followed: [Event] = []
        while !followed.contains(where: { $0.event.message.hasPrefix("STARTING → RUNNING") }) {
            followed.append(try JSONDecoder().decode(Event.self, from: Data(try await follower.nextOutputLine().utf8)))
        }
        #expect(followed.first?.event.message == "replicas 2 → 3")
    }

    @Test func waitingWithNoLeaderGivesUpSayingSoAndLeavesTheRequestQueued() async throws {
        let result = try await cli(["scale", "api", "2", "--leader-timeout", "0.5"])
        #expect(result.status == 1)
        let lines = result.errors.split(separator: "\n")
        #expect(lines.count == 1 && lines[0].contains("no controller has led cluster \(keys.cluster) for 0.5 seconds"), "\(result.errors)")
        #expect(try await client.send("XLEN", keys.requests) == .integer(1), "the request stays queued")
    }

    @Test func anUnreachableRedisIsOneLineNamingIt() async throws {
        let result = try await SwerveProcess(["get", "backends", "--redis", "redis://127.0.0.1:1"], environment: [:], captureOutput: true).exit()
        #expect(result.status == 1)
        let lines = result.stderr.split(separator: "\n")
        #expect(lines.count == 1 && lines[0].contains("127.0.0.1:1"), "\(result.stderr)")
    }
}
