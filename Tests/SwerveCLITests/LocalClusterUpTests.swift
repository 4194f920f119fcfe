import Foundation
import Glibc
import SwerveTestSupport
import Testing

/// `swerve-ops up` (what `ops/up` runs): a whole cluster that serves, and Ctrl-C stops every
/// process it started and nothing else.
@Suite(.timeLimit(.minutes(2))) struct LocalClusterUp {
    @Test func upServesTheExampleBackendsAndCtrlCStopsEverythingItStarted() async throws {
        let build = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        let scratch = ProcessInfo.processInfo.environment["SWERVE_TEST_TMPDIR"] ?? NSTemporaryDirectory()
        let directory = "\(scratch)/up-\(UInt32.random(in: 0...UInt32.max))"
        let bystander = Process() // not started by `up`: must survive its Ctrl-C
        bystander.executableURL = URL(fileURLWithPath: "/bin/sleep")
        bystander.arguments = ["120"]
        try bystander.run()
        defer { kill(bystander.processIdentifier, SIGKILL); bystander.waitUntilExit() }

        let spec = "\(#filePath.components(separatedBy: "/Tests/")[0])/examples/backends.yaml"
        let up = Process()
        up.executableURL = build.appendingPathComponent("swerve-ops")
        up.arguments = ["up", "--swerve", build.appendingPathComponent("swerve").path, "--directory", directory, "--router-port", "0",
                        "--apply", spec, "--cluster", "up-test"]
        up.environment = ProcessInfo.processInfo.environment.merging(["SWERVE_LOG_LEVEL": "warning"]) { $1 }
        let output = Pipe()
        up.standardOutput = output
        up.standardError = output
        try up.run()
        defer {
            // Even when the test fails: SIGINT, so it stops what it started (its children lead
            // process groups of their own and would outlive a SIGKILLed launcher).
            if up.isRunning { kill(up.processIdentifier, SIGINT); up.waitUntilExit() }
        }

        // Its lines, as they come, until it says it is ready.
        var lines: [String] = []
        let reader = output.fileHandleForReading
        func nextLine() -> String? {
            var line: [UInt8] = []
            var byte: UInt8 = 0
            while read(reader.fileDescriptor, &byte, 1) == 1 {
                if byte == 10 { return String(decoding: line, as: UTF8.self) }
                line.append(byte)
            }
            return nil
        }
        while let line = nextLine() {
            lines.append(line)
            if line.hasPrefix("ready:") { break }
        }
        let router = try #require(lines.first { $0.hasPrefix("router:") }?.split(separator: " ").dropFirst().first { $0.hasPrefix("http://") })
        #expect(lines.contains("applied: hello from \(spec)"), "\(lines)")
        let response = try await httpRequest(String(router.dropFirst("http://".count)), path: "/hello/x")
        #expect(response.status == 200 && response.headers["x-swerve-replica"]?.hasPrefix("hello#") == true, "an echo replica answered")
        let dashboard = try #require(lines.first { $0.hasPrefix("dashboard:") }?.split(separator: " ").dropFirst().first { $0.hasPrefix("http://") })
        let state = try await httpRequest(String(dashboard.dropFirst("http://".count).dropLast()), path: "/api/state")
        #expect(state.status == 200 && String(decoding: state.body, as: UTF8.self).contains("\"tag\":\"hello\""), "the dashboard shows the applied backend")

        // Every member names the Redis on its command line or in its environment (workers).
        let redis = try #require(lines.first { $0.hasPrefix("redis:") }?.split(separator: " ").dropFirst().first { $0.hasPrefix("redis://") })
        let token = String(redis.dropFirst("redis://".count))
        let started = processes(naming: token)
        let expected = 11 // redis, 3 controllers, 2 nodes, a router, a dashboard and 3 workers
        #expect(started.count >= expected, "\(started.count) processes")
        kill(up.processIdentifier, SIGINT)
        up.waitUntilExit()
        #expect(up.terminationStatus == 0)
        #expect(processes(naming: token).isEmpty, "every process it started is gone")
        #expect(bystander.isRunning, "a process it did not start is left alone")
    }

    /// Pids of processes whose command line or environment contains `token`.
    func processes(naming token: String) -> [Int32] {
        var found: [Int32] = []
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(entry), pid != getpid() else { continue }
            let text = ["cmdline", "environ"].compactMap { FileManager.default.contents(atPath: "/proc/\(entry)/\($0)") }
                .map { String(decoding: $0.map { $0 == 0 ? 32 : $0 }, as: UTF8.self) }.joined(separator: " ")
            if text.contains(token) { found.append(pid) }
        }
        return found.sorted()
    }
}
