import Foundation
import Glibc
import SwerveProtocol
import SwerveRedis
import SwerveTestSupport
import Testing

/// A leader cut off from Redis (packets dropped, no reset: its calls hang until their
/// timeouts) stops leading when its lease's trust runs out, not when a blocked call returns.
extension ControllerProcesses {
    /// A TCP relay to Redis that, once its cut file exists, goes on accepting and reading but
    /// forwards nothing: what a partition that drops packets looks like to the process behind
    /// it. (A file, not a signal: children of the test runner may inherit signals blocked.)
    struct BlackholeRelay {
        let process: Process
        let url: String
        let cutFile: String

        func cut() { FileManager.default.createFile(atPath: cutFile, contents: Data()) }

        func stop() {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    func blackholeRelay() async throws -> BlackholeRelay {
        let target = try RedisConfiguration(url: url)
        guard case .tcp(let host, let port) = target.endpoint else { throw TestFailure("the test Redis is not on TCP: \(url)") }
        let listenPort = try freeLoopbackPort()
        let directory = ProcessInfo.processInfo.environment["SWERVE_TEST_TMPDIR"] ?? NSTemporaryDirectory()
        let script = "\(directory)/\(keys.cluster)-relay.py"
        try """
            import os, socket, sys, threading
            def pump(src, dst):
                while True:
                    data = src.recv(65536)
                    if not data:
                        return
                    if not os.path.exists(sys.argv[4]):
                        dst.sendall(data)
            def serve(client):
                upstream = socket.create_connection((sys.argv[2], int(sys.argv[3])))
                threading.Thread(target=pump, args=(client, upstream), daemon=True).start()
                threading.Thread(target=pump, args=(upstream, client), daemon=True).start()
            listener = socket.socket()
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", int(sys.argv[1])))
            listener.listen(64)
            while True:
                connection, _ = listener.accept()
                serve(connection)
            """.write(toFile: script, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        let cutFile = "\(directory)/\(keys.cluster)-relay.cut"
        try? FileManager.default.removeItem(atPath: cutFile)
        process.arguments = ["python3", script, "\(listenPort)", host, "\(port)", cutFile]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let relay = BlackholeRelay(process: process, url: "redis://127.0.0.1:\(listenPort)", cutFile: cutFile)
        let probe = RedisClient(configuration: try RedisConfiguration(url: relay.url), logger: logger)
        defer { probe.close() }
        let deadline = ContinuousClock.now + .seconds(10)
        while (try? await probe.send("PING"))?.string != "PONG" {
            guard ContinuousClock.now < deadline else { relay.stop(); throw TestFailure("the relay did not come up") }
            try await Task.sleep(for: .milliseconds(20))
        }
        return relay
    }

    @Test func aLeaderCutOffFromRedisStepsDownBeforeAnotherCanLead() async throws {
        let relay = try await blackholeRelay()
        defer { relay.stop() }
        let metrics = "127.0.0.1:\(try freeLoopbackPort())"
        // A 3 s lease: c1 must step down 0.6 s (the margin) before the lease can expire in
        // Redis; with the default 0.2 s a starved debug process on a loaded machine misses it.
        let ttl = ["SWERVE_LEASE_TTL_MS": "3000"]
        let isolated = try SwerveProcess(["controller", "--redis", relay.url, "--cluster", keys.cluster, "--id", "c1", "--metrics-address", metrics],
                                         environment: ["SWERVE_LOG_LEVEL": "warning"].merging(ttl) { $1 })
        defer { isolated.kill() }
        try await awaitLeader("c1")
        let other = try controller("c2", environment: ttl)
        defer { other.kill() }
        #expect(try await scrapeWhenUp(metrics)["swerve_controller_is_leader"] == 1)

        // The lease can expire in Redis no sooner than a TTL after c1's last renew landed; c1
        // stops trusting it a margin before that, counted from when it sent that renew. So by
        // the time c2 is elected, c1 must already have stepped down — with its renew still
        // hanging on the relay.
        try await awaitLeader("c2", after: { relay.cut() })
        #expect(try await scrape(metrics)["swerve_controller_is_leader"] == 0, "c1 still claimed to lead when c2 took over; c2 said:\n\(other.stderrSoFar)")
        isolated.kill(SIGKILL)
        let (_, stderr) = await isolated.exit()
        #expect(stderr.contains("stepped down") && stderr.contains("the lease was not renewed in time"), "\(stderr)")
    }
}
