/// Helpers shared by the test targets that run real `swerve` processes. Not shipped.
public import Foundation
import Glibc
import Synchronization
public import SwerveCore
import SwerveLauncher

/// The built `swerve` binary: a sibling of the test bundle in the build directory.
public func swerveBinary() throws -> String {
    let directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    let path = ProcessInfo.processInfo.environment["SWERVE_BINARY"] ?? directory.appendingPathComponent("swerve").path
    guard FileManager.default.isExecutableFile(atPath: path) else {
        throw TestFailure("no swerve binary at \(path): build with `swift build --build-tests` (ops/test does)")
    }
    return path
}

/// The user the tests run `swerve` processes as, `UID:GID` from `SWERVE_TEST_USER` (ops/test
/// sets an unprivileged one when it runs as root: production runs Swerve as a non-root user,
/// and some failures — a refused `setsockopt`, an unreadable file — only show there). Nil: as
/// the test runner's own user.
public var testUser: (uid: UInt32, gid: UInt32)? {
    guard let value = ProcessInfo.processInfo.environment["SWERVE_TEST_USER"], !value.isEmpty else { return nil }
    let parts = value.split(separator: ":").compactMap { UInt32($0) }
    return parts.count == 2 ? (parts[0], parts[1]) : nil
}

/// `executable arguments` as ``testUser``: through `setpriv`, which changes user and group,
/// drops supplementary groups and then executes it (the same pid, so signals reach it).
public func asTestUser(_ executable: String, _ arguments: [String]) -> (executable: String, arguments: [String]) {
    guard let user = testUser else { return (executable, arguments) }
    return ("/usr/bin/setpriv", ["--reuid", "\(user.uid)", "--regid", "\(user.gid)", "--clear-groups", "--", executable] + arguments)
}

public struct TestFailure: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// A started `swerve` process whose stderr is collected, run as ``testUser`` when one is set.
public final class SwerveProcess: @unchecked Sendable {
    // @unchecked: `process`, `errors` and `outputPipe` are set once in init and only read afterwards;
    // Foundation's Process and Pipe are thread-safe for these reads.
    public let process: Process
    private let errors = Pipe()
    private let outputPipe: Pipe?
    /// Everything the process wrote to stderr, read as it comes: a pipe nobody reads fills at
    /// 64 KiB and then blocks the process's next log line — a process that logs a warning per
    /// reconnect attempt froze that way during a minute without Redis.
    private let stderrBytes = CollectedOutput()
    private let stderrClosed = DispatchSemaphore(value: 0)

    private final class CollectedOutput: Sendable {
        let data = Mutex(Data())
    }

    /// - Parameters:
    ///   - captureOutput: keep stdout, readable as ``output`` once the process exited.
    ///   - prefix: a command that runs swerve (`ip netns exec NAME`), if any.
    public init(_ arguments: [String], environment: [String: String], captureOutput: Bool = false, prefix: [String] = []) throws {
        process = Process()
        let command = asTestUser(try swerveBinary(), arguments)
        let full = prefix + [command.executable] + command.arguments
        process.executableURL = URL(fileURLWithPath: full[0])
        process.arguments = Array(full.dropFirst())
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.standardError = errors
        outputPipe = captureOutput ? Pipe() : nil
        process.standardOutput = outputPipe ?? FileHandle.nullDevice
        try process.run()
        // Read on a thread of its own until end of file (every writer closed it). The thread
        // holds the pipe, so its descriptor stays open (and never reused) while it reads.
        let (bytes, closed, pipe) = (stderrBytes, stderrClosed, errors)
        Thread {
            let descriptor = pipe.fileHandleForReading.fileDescriptor
            var buffer = [UInt8](repeating: 0, count: 65_536)
            while true {
                let count = read(descriptor, &buffer, buffer.count)
                if count < 0, errno == EINTR { continue }
                guard count > 0 else { break }
                bytes.data.withLock { $0.append(contentsOf: buffer[0..<count]) }
            }
            closed.signal()
        }.start()
    }

    /// The next line the process writes to stdout (with `captureOutput`), read as it comes
    /// (off the cooperative pool); what follows stays in the pipe for the next call or ``output``.
    public func nextOutputLine() async throws -> String {
        guard let outputPipe else { throw TestFailure("nextOutputLine needs captureOutput") }
        let handle = outputPipe.fileHandleForReading
        return try await withCheckedThrowingContinuation { continuation in
            Thread {
                var line: [UInt8] = []
                var byte: UInt8 = 0
                while read(handle.fileDescriptor, &byte, 1) == 1, byte != 10 { line.append(byte) }
                if line.isEmpty {
                    continuation.resume(throwing: TestFailure("the process wrote no line to stdout"))
                } else {
                    continuation.resume(returning: String(decoding: line, as: UTF8.self))
                }
            }.start()
        }
    }

    /// What the process wrote to stdout (with `captureOutput`), once it has exited.
    public var output: String {
        guard let outputPipe else { return "" }
        return String(decoding: outputPipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    }

    /// What the process wrote to stderr so far (it may still be running): for a test that
    /// waits for a log line no key or channel would show.
    public var stderrSoFar: String {
        String(decoding: stderrBytes.data.withLock { $0 }, as: UTF8.self)
    }

    /// Waits (off the cooperative pool) for the process to exit; returns its status and stderr.
    public func exit() async -> (status: Int32, stderr: String) {
        await withCheckedContinuation { continuation in
            Thread {
                self.stderrClosed.wait()
                self.process.waitUntilExit()
                let output = self.stderrBytes.data.withLock { $0 }
                continuation.resume(returning: (self.process.terminationStatus, String(decoding: output, as: UTF8.self)))
            }.start()
        }
    }

    public func kill(_ signal: Int32 = SIGKILL) { Glibc.kill(process.processIdentifier, signal) }

    /// The process id (setpriv execs `swerve`, so it is swerve's own).
    public var pid: Int32 { process.processIdentifier }

    deinit { if process.isRunning { Glibc.kill(process.processIdentifier, SIGKILL) } }
}

/// One HTTP/1.1 request over a fresh connection (`Connection: close`), on a thread of its own
/// so a slow answer never blocks Swift's pool.
public func httpRequest(_ address: String, method: String = "GET", path: String = "/", headers: [String: String] = [:],
                        body: [UInt8] = []) async throws -> (status: Int, headers: [String: String], body: [UInt8]) {
    try await withCheckedThrowingContinuation { continuation in
        Thread {
            continuation.resume(with: Result { try blockingHTTPRequest(address, method: method, path: path, headers: headers, body: body) })
        }.start()
    }
}

/// ``httpRequest(_:method:path:headers:body:)`` to a replica's typed address (IPv4 or a name).
public func httpRequest(_ address: HostPort, method: String = "GET", path: String = "/", headers: [String: String] = [:],
                        body: [UInt8] = []) async throws -> (status: Int, headers: [String: String], body: [UInt8]) {
    try await httpRequest(address.description, method: method, path: path, headers: headers, body: body)
}

private func blockingHTTPRequest(_ address: String, method: String, path: String, headers extra: [String: String], body: [UInt8]) throws -> (status: Int, headers: [String: String], body: [UInt8]) {
    let host = String(address.prefix { $0 != ":" })
    let descriptor = try connectTCP(address).mapError { TestFailure($0.description) }.get()
    defer { close(descriptor) }
    let lines = extra.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)\r\n" }.joined()
    // A Host among `extra` replaces the address's.
    let hostLine = extra.keys.contains { $0.lowercased() == "host" } ? "" : "Host: \(host)\r\n"
    let request = Array("\(method) \(path) HTTP/1.1\r\n\(hostLine)Content-Length: \(body.count)\r\nConnection: close\r\n\(lines)\r\n".utf8) + body
    // A large body is sent on a thread of its own while this one reads, as curl does: a
    // server that streams its answer while the body still comes (the built-in echo) would
    // otherwise wait forever for a client that reads only once it sent everything. A small
    // request goes out at once, before reading, so it is in flight as soon as this returns
    // to the caller's next step.
    let sent = DispatchSemaphore(value: 0)
    let send: @Sendable () -> Void = {
        var offset = 0
        while offset < request.count {
            let count = request[offset...].withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if count <= 0 { break }
            offset += count
        }
        sent.signal()
    }
    if request.count > 65_536 { Thread { send() }.start() } else { send() }
    defer { sent.wait() }
    let response = readUntilClosed(descriptor)
    guard let split = response.firstRange(of: Array("\r\n\r\n".utf8)) else { throw TestFailure("no HTTP response from \(address)") }
    let head = String(decoding: response[..<split.lowerBound], as: UTF8.self).components(separatedBy: "\r\n")
    let status = Int(head[0].split(separator: " ")[1]) ?? 0
    var headers: [String: String] = [:]
    for line in head.dropFirst() {
        guard let colon = line.firstIndex(of: ":") else { continue }
        headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
    }
    return (status, headers, Array(response[split.upperBound...]))
}

/// Everything the peer sends until it closes the connection (or an error ends it), blocking.
private func readUntilClosed(_ descriptor: Int32) -> [UInt8] {
    var response: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = recv(descriptor, &buffer, buffer.count, 0)
        if count <= 0 { break }
        response += buffer[0..<count]
    }
    return response
}

/// A request already sent (connected and written on the caller's thread, so it is in the
/// server's socket before the caller's next step), whose answer a thread of its own reads as
/// it comes, noting when it was complete.
public final class PendingHTTPResponse: Sendable {
    private typealias Outcome = Result<(status: Int, finished: ContinuousClock.Instant), TestFailure>
    private let state = Mutex<(outcome: Outcome?, waiter: CheckedContinuation<(status: Int, finished: ContinuousClock.Instant), any Error>?)>((nil, nil))

    /// Connects to `address` and writes a bodiless `GET path` at once, blocking (loopback: fast).
    public init(_ address: String, path: String) throws {
        let host = String(address.prefix { $0 != ":" })
        let descriptor = try connectTCP(address).mapError { TestFailure($0.description) }.get()
        let request = Array("GET \(path) HTTP/1.1\r\nHost: \(host)\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".utf8)
        let sent = request.withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        guard sent == request.count else {
            close(descriptor)
            throw TestFailure("could not send the request to \(address)")
        }
        Thread { [self] in
            defer { close(descriptor) }
            let response = readUntilClosed(descriptor)
            let finished = ContinuousClock.now
            let line = String(decoding: response.prefix(64), as: UTF8.self).split(separator: "\r\n").first ?? ""
            let words = line.split(separator: " ")
            let outcome: Outcome = words.count >= 2 && Int(words[1]) != nil
                ? .success((Int(words[1])!, finished)) : .failure(TestFailure("no HTTP response from \(address)"))
            let waiter = self.state.withLock { state in
                state.outcome = outcome
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume(with: outcome.mapError { $0 as any Error })
        }.start()
    }

    /// The response's status and when it had arrived whole (the server closed the connection).
    public func response() async throws -> (status: Int, finished: ContinuousClock.Instant) {
        try await withCheckedThrowingContinuation { continuation in
            let outcome = state.withLock { state -> Outcome? in
                if state.outcome == nil { state.waiter = continuation }
                return state.outcome
            }
            if let outcome { continuation.resume(with: outcome.mapError { $0 as any Error }) }
        }
    }
}

/// Sends `requests` one after another on one kept-alive connection (each without a body) and
/// returns each response's status: what a browser or an HTTP client pool does.
/// - Throws: when a response does not come within 5 s (the connection is stuck).
public func httpKeepAlive(_ address: String, _ requests: [(method: String, path: String)]) async throws -> [Int] {
    try await withCheckedThrowingContinuation { continuation in
        Thread {
            continuation.resume(with: Result { try blockingKeepAlive(address, requests) })
        }.start()
    }
}

private func blockingKeepAlive(_ address: String, _ requests: [(method: String, path: String)]) throws -> [Int] {
    let host = String(address.prefix { $0 != ":" })
    let descriptor = try connectTCP(address, receiveTimeoutSeconds: 5).mapError { TestFailure($0.description) }.get()
    defer { close(descriptor) }
    var statuses: [Int] = []
    var pending: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    for (index, request) in requests.enumerated() {
        let bytes = Array("\(request.method) \(request.path) HTTP/1.1\r\nHost: \(host)\r\nContent-Length: 0\r\n\r\n".utf8)
        _ = bytes.withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        func fill() throws {
            let count = recv(descriptor, &buffer, buffer.count, 0)
            guard count > 0 else { throw TestFailure("no answer to request \(index + 1) (\(request.method) \(request.path)) on the kept-alive connection") }
            pending += buffer[0..<count]
        }
        while pending.firstRange(of: Array("\r\n\r\n".utf8)) == nil { try fill() }
        let split = pending.firstRange(of: Array("\r\n\r\n".utf8))!
        let head = String(decoding: pending[..<split.lowerBound], as: UTF8.self).lowercased().components(separatedBy: "\r\n")
        statuses.append(Int(head[0].split(separator: " ")[1]) ?? 0)
        let length = head.first { $0.hasPrefix("content-length:") }.flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) } ?? 0
        while pending.count < split.upperBound + length { try fill() }
        pending.removeFirst(split.upperBound + length)
    }
    return statuses
}

/// A TCP port on 127.0.0.1 that nothing listens on right now, for a process that must be told
/// its port. It comes from below the kernel's ephemeral range (32768 and up on Linux), so no
/// process binding port 0 — workers, routers, test clients — can take it before it is used.
public func freeLoopbackPort() throws -> Int {
    for _ in 0..<100 {
        if let port = bindLoopback(port: Int.random(in: 20000..<32000)) { return port }
    }
    throw TestFailure("no free loopback port between 20000 and 32000")
}

/// Sends `chunks` on a fresh connection, `pause` apart (a slow client), stopping early once
/// the peer answered or closed; then reads until the peer closes or `timeoutSeconds` pass.
/// Returns what came back and whether the peer closed the connection.
public func rawExchange(_ address: String, chunks: [[UInt8]], pause: Duration = .zero,
                        timeoutSeconds: Int = 5) async throws -> (received: [UInt8], closed: Bool) {
    try await withCheckedThrowingContinuation { continuation in
        Thread {
            continuation.resume(with: Result { try blockingRawExchange(address, chunks: chunks, pause: pause, timeoutSeconds: timeoutSeconds) })
        }.start()
    }
}

private func blockingRawExchange(_ address: String, chunks: [[UInt8]], pause: Duration, timeoutSeconds: Int) throws -> (received: [UInt8], closed: Bool) {
    let descriptor = try connectTCP(address, receiveTimeoutSeconds: timeoutSeconds).mapError { TestFailure($0.description) }.get()
    defer { close(descriptor) }
    var received: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    for (index, chunk) in chunks.enumerated() {
        _ = chunk.withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        guard index < chunks.count - 1, pause > .zero else { continue }
        Thread.sleep(forTimeInterval: Double(pause.components.seconds) + Double(pause.components.attoseconds) / 1e18)
        let count = recv(descriptor, &buffer, buffer.count, Int32(MSG_DONTWAIT))
        if count == 0 { return (received, true) }
        if count > 0 {
            received += buffer[0..<count]
            break
        }
    }
    while true {
        let count = recv(descriptor, &buffer, buffer.count, 0)
        if count == 0 { return (received, true) }
        if count < 0 { return (received, errno == ECONNRESET) }
        received += buffer[0..<count]
    }
}

/// Polls `condition` every `interval` until it holds, or fails after `timeout` saying `what`:
/// for what has no event to await (a router's admin page, a periodic report, a replica's
/// acknowledgement) — everything else is awaited.
public func poll(_ what: String, every interval: Duration = .milliseconds(10), for timeout: Duration = .seconds(10),
                 until condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: interval)
    }
    throw TestFailure("timed out after \(timeout) waiting for \(what)")
}
