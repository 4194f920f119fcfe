import Foundation
import Glibc
import Logging
import Synchronization
import SwerveCore
import SwerveProtocol
import SwerveRedis
import SwerveTestSupport
import Testing

/// `swerve-ops sim` (what `ops/bench scale` measures with) at a small size against real
/// controllers: its nodes register, its workers come up, and the failures it injects on demand
/// are handled as real ones — so the simulator keeps speaking the protocol the agents speak.
@Suite(.timeLimit(.minutes(1))) struct SimulatedFleet: ClusterTest {
    let url: String
    let keys: ClusterKeys
    let client: RedisClient
    let logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }

    init() throws {
        (url, keys, client) = try TestCluster.make(prefix: "sim")
    }

    @Test func aSimulatedFleetComesUpAndItsFailuresAreRepairedAcrossAFailover() async throws {
        let first = try controller("c1")
        let second = try controller("c2")
        let sim = try FleetProcess(["sim", "--redis", url, "--cluster", keys.cluster, "--nodes", "20", "--cpu", "8", "--routers", "2"])
        defer { first.kill(); second.kill(); sim.stop() }
        try #require(sim.nextLine() == "registered 20")

        let create = Request.Operation.createBackend(tag: "api", config: BackendConfig(numReplicas: 60),
                                                     replicaConfig: ReplicaConfig(workload: .builtin(name: "echo"), resources: Resources(cpu: 1)))
        #expect(try await request(create, goal: "g-create") == GoalOutcome(goal: "g-create"))
        let routed = try await routedReplicas()
        #expect(routed.count == 60)

        // A replica killed: its node's exit record; the leader replaces it.
        sim.send("kill-replica")
        let killed = try #require(sim.nextLine()?.split(separator: " ").last.map(String.init))
        #expect(routed[killed] != nil, "it killed a routed replica: \(killed)")
        try await awaitRouted { routed in routed.count == 60 && !routed.contains { $0.tag == killed } }

        // A node lost (its lease runs out): its replicas are replaced on the others.
        let lost = try #require(try await awaitRouted { _ in true }.first?.node)
        sim.send("lose-node \(lost)")
        #expect(sim.nextLine()?.hasPrefix("lost \(lost)") == true)
        try await awaitRouted { routed in routed.count == 60 && !routed.contains { $0.node == lost } }
        let before = try await routedReplicas()

        // The leader killed: the other takes over and restarts nothing.
        let leader = try #require(try await leaderID())
        (leader == "c1" ? first : second).kill(SIGKILL)
        #expect(try await request(.updateBackendConfig(tag: "api", patch: BackendConfigPatch(numReplicas: 61)), goal: "g-scale") == GoalOutcome(goal: "g-scale"))
        let after = try await routedReplicas()
        #expect(Set(before.keys).isSubset(of: Set(after.keys)), "no replica was replaced by the failover")
        #expect(after.count == 61)

        // Its routers never read a view that went back (they print VIOLATION when one does).
        sim.send("status")
        let status = try #require(sim.nextLine())
        #expect(status.hasPrefix("status nodes=20 lost=1 replicas=61 ready=61"), "\(status)")
        let views = status.split(separator: " ").first { $0.hasPrefix("views=") }.flatMap { Int($0.dropFirst("views=".count)) } ?? 0
        #expect(views >= 2 * 4, "each router checked every routing view it was told of: \(status)")
        #expect(sim.violations.isEmpty, "\(sim.violations)")
    }

    /// Returns the routed replicas of `api` once they satisfy `condition`: read when subscribed,
    /// then at every routing notice.
    @discardableResult
    func awaitRouted(_ condition: @escaping @Sendable ([RoutedReplica]) -> Bool) async throws -> [RoutedReplica] {
        let subscriber = RedisSubscriber(configuration: client.configuration, logger: logger)
        return try await subscriber.subscribe(to: [keys.snapshots]) { subscription in
            for await event in subscription {
                if case .disconnected = event { continue }
                let routed = try await current()
                if condition(routed) { return routed }
            }
            throw TestFailure("the subscription ended before routing showed what was awaited: \(try await current())")
        }
    }

    func current() async throws -> [RoutedReplica] {
        try await routed()
    }
}

/// `swerve-ops sim` as a child, run as the test user: commands on its stdin, answers on its
/// stdout (`VIOLATION` lines set aside).
final class FleetProcess: Sendable {
    private let process: Process
    private let input: FileHandle
    private let output: FileHandle
    private let state = Mutex<(buffer: [UInt8], violations: [String])>(([], []))

    init(_ arguments: [String]) throws {
        let path = URL(fileURLWithPath: try swerveBinary()).deletingLastPathComponent().appendingPathComponent("swerve-ops").path
        let command = asTestUser(path, arguments)
        process = Process()
        process.executableURL = URL(fileURLWithPath: command.executable)
        process.arguments = command.arguments
        let stdin = Pipe(), stdout = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = FileHandle.standardError
        try process.run()
        input = stdin.fileHandleForWriting
        output = stdout.fileHandleForReading
    }

    func send(_ command: String) { input.write(Data((command + "\n").utf8)) }

    var violations: [String] { state.withLock { $0.violations } }

    /// The next line it printed (blocking), nil once it closed stdout.
    func nextLine() -> String? {
        while true {
            let line = state.withLock { state -> String? in
                while let newline = state.buffer.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = String(decoding: state.buffer[..<newline], as: UTF8.self)
                    state.buffer.removeSubrange(...newline)
                    if line.hasPrefix("VIOLATION") { state.violations.append(line) } else { return line }
                }
                return nil
            }
            if let line { return line }
            let data = output.availableData
            if data.isEmpty { return nil }
            state.withLock { $0.buffer.append(contentsOf: data) }
        }
    }

    func stop() {
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
    }
}
