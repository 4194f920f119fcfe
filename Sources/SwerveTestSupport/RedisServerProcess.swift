public import Foundation
import Glibc
import SwerveLauncher
import Synchronization

/// A redis-server of a test's own, on a free loopback port, that the test may kill and restart.
public final class RedisServerProcess: Sendable {
    public let port: Int
    public let directory: String
    private let extraArguments: [String]
    private let running = Mutex<Process?>(nil)

    public init(extraArguments: [String] = []) throws {
        port = try freeLoopbackPort()
        directory = (ProcessInfo.processInfo.environment["SWERVE_TEST_TMPDIR"] ?? NSTemporaryDirectory()) + "/redis-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        self.extraArguments = extraArguments
    }

    public var url: String { "redis://127.0.0.1:\(port)" }
    public var socketPath: String { directory + "/redis.sock" }

    /// Starts the server and returns once it logs that it accepts connections.
    public func start() async throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["redis-server", "--port", "\(port)", "--bind", "127.0.0.1", "--dir", directory,
                             "--unixsocket", socketPath, "--save", "", "--appendonly", "no", "--logfile", ""] + extraArguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        let ready = ReadinessWatcher()
        output.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            ready.received(data)
            if data.isEmpty { handle.readabilityHandler = nil }
        }
        try process.run()
        running.withLock { $0 = process }
        try await ready.wait()
    }

    /// A clean shutdown (`SHUTDOWN`: the append-only file is flushed), then waits for the
    /// process to be gone. Not SIGTERM: a child of the test runner may inherit it ignored.
    public func stop() throws {
        guard let process = running.withLock({ old -> Process? in defer { old = nil }; return old }) else { return }
        let descriptor = try connectTCP("127.0.0.1:\(port)").mapError { TestFailure($0.description) }.get()
        let command = Array("*1\r\n$8\r\nSHUTDOWN\r\n".utf8)
        _ = command.withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        close(descriptor)
        process.waitUntilExit()
    }

    /// Sends `signal` (SIGSTOP freezes it: it keeps its connections and answers nothing).
    public func signal(_ signal: Int32) {
        guard let pid = running.withLock({ $0?.processIdentifier }) else { return }
        Glibc.kill(pid, signal)
    }

    /// SIGKILL, then wait for the process to be gone.
    public func kill() {
        guard let process = running.withLock({ old -> Process? in defer { old = nil }; return old }) else { return }
        Glibc.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    deinit {
        kill()
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// Turns redis-server's log into an awaitable "ready" event.
private final class ReadinessWatcher: Sendable {
    private struct State {
        var log = ""
        var outcome: Result<Void, any Error>?
        var waiter: CheckedContinuation<Void, any Error>?
    }
    private let state = Mutex(State())

    func received(_ data: Data) {
        let waiter = state.withLock { state -> (CheckedContinuation<Void, any Error>, Result<Void, any Error>)? in
            guard state.outcome == nil else { return nil }
            state.log += String(decoding: data, as: UTF8.self)
            if state.log.contains("Ready to accept connections") {
                state.outcome = .success(())
            } else if data.isEmpty {
                state.outcome = .failure(TestFailure("redis-server exited before it was ready:\n\(state.log)"))
            } else {
                return nil
            }
            guard let waiter = state.waiter else { return nil }
            state.waiter = nil
            return (waiter, state.outcome!)
        }
        if let (continuation, outcome) = waiter { continuation.resume(with: outcome) }
    }

    func wait() async throws {
        try await withCheckedThrowingContinuation { continuation in
            let outcome = state.withLock { state -> Result<Void, any Error>? in
                if let outcome = state.outcome { return outcome }
                state.waiter = continuation
                return nil
            }
            if let outcome { continuation.resume(with: outcome) }
        }
    }
}

/// A listening socket on 127.0.0.1 that never accepts: connections complete (into the
/// backlog) but nothing is ever answered. With a full backlog, new connects get no answer at all.
public final class LoopbackListener: Sendable {
    public let descriptor: Int32
    public let port: Int

    public init(backlog: Int32) throws {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw TestFailure("socket() failed") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(descriptor, backlog) == 0 else { throw TestFailure("bind/listen failed") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        self.descriptor = descriptor
        self.port = Int(UInt16(bigEndian: address.sin_port))
    }

    deinit { close(descriptor) }
}
