import Foundation
import Glibc
import SwerveCore
import SwerveLauncher
import SwerveSystem
import Synchronization

/// Steady HTTP load for the chaos harness: a few threads, each with one keep-alive connection
/// to the router, sending `GET path` in a loop with a pause between requests, and recording
/// every outcome — a status code, or why no response came.
///
/// Blocking sockets on threads of their own (not the cooperative pool): the load must go on
/// while the harness waits on Redis, and each thread's pace is its own.
final class LoadGenerator: Sendable {
    /// Every outcome so far, by kind: `200`; a failed status with the first line of its body
    /// (`503 backend api has no running replica`); or why no response came (`connect: …`).
    private let outcomes = Mutex<[String: (count: Int, first: ContinuousClock.Instant)]>([:])
    private let stopped = Atomic<Bool>(false)
    private let running = Atomic<Int>(0)
    let host: String
    let port: UInt16
    let path: String
    let pause: Duration

    init(address: String, path: String, pause: Duration) throws {
        guard let parsed = HostPort(address) else { throw LoadError("bad address: \(HostPort.problem(in: address) ?? address)") }
        host = parsed.host
        port = parsed.port
        self.path = path
        self.pause = pause
    }

    func start(threads: Int) {
        for _ in 0..<threads {
            running.add(1, ordering: .relaxed)
            Thread { [self] in
                loop()
                running.subtract(1, ordering: .relaxed)
            }.start()
        }
    }

    /// Stops every thread and returns once they finished their last request.
    func stop() async {
        stopped.store(true, ordering: .relaxed)
        while running.load(ordering: .relaxed) > 0 { try? await Task.sleep(for: .milliseconds(10)) }
    }

    /// How often each outcome happened, and when it first did (to set beside the fault log).
    var tally: [String: (count: Int, first: ContinuousClock.Instant)] { outcomes.withLock { $0 } }

    /// Requests that did not succeed so far (any outcome but a 2xx).
    var failed: Int { outcomes.withLock { $0.filter { !$0.key.hasPrefix("2") }.values.map(\.count).reduce(0, +) } }

    private func record(_ outcome: String) {
        let now = ContinuousClock.now
        outcomes.withLock { $0[outcome, default: (0, now)].count += 1 }
    }

    private var request: [UInt8] { Array("GET \(path) HTTP/1.1\r\nHost: \(host)\r\nUser-Agent: swerve-chaos\r\n\r\n".utf8) }

    /// An outcome as the tally names it: the status, with the body's first line if it failed.
    private static func outcome(status: Int, reason: String) -> String {
        (200..<300).contains(status) ? "\(status)" : "\(status) \(reason)"
    }

    /// One request on a connection of its own (on a thread of its own); its outcome as the
    /// tally would name it. Not counted in the tally.
    func once() async -> String {
        await withCheckedContinuation { continuation in
            Thread { [self] in
                switch connect() {
                case .failure(let error):
                    continuation.resume(returning: error.reason)
                case .success(let descriptor):
                    defer { close(descriptor) }
                    switch exchange(descriptor, request) {
                    case .success(let (status, _, reason)): continuation.resume(returning: Self.outcome(status: status, reason: reason))
                    case .failure(let error): continuation.resume(returning: error.reason)
                    }
                }
            }.start()
        }
    }

    private func loop() {
        var connection: Int32 = -1
        let request = self.request
        let pauseMicroseconds = UInt32(pause.wholeMilliseconds * 1000)
        while !stopped.load(ordering: .relaxed) {
            if connection < 0 {
                switch connect() {
                case .success(let descriptor): connection = descriptor
                case .failure(let error):
                    record(error.reason)
                    usleep(max(pauseMicroseconds, 10_000))
                    continue
                }
            }
            switch exchange(connection, request) {
            case .success(let (status, keepAlive, reason)):
                record(Self.outcome(status: status, reason: reason))
                if !keepAlive { close(connection); connection = -1 }
            case .failure(let error):
                record(error.reason)
                close(connection)
                connection = -1
            }
            usleep(pauseMicroseconds)
        }
        if connection >= 0 { close(connection) }
    }

    struct Failure: Error { var reason: String }

    private func connect() -> Result<Int32, Failure> {
        connectTCP("\(host):\(port)", receiveTimeoutSeconds: 5).mapError { Failure(reason: $0.description) }
    }

    /// Sends the request and reads one whole response (Content-Length or chunked).
    /// Returns the status, whether the connection stays open, and the body's first line.
    private func exchange(_ descriptor: Int32, _ request: [UInt8]) -> Result<(Int, Bool, String), Failure> {
        let sent = request.withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        guard sent == request.count else { return .failure(Failure(reason: "send: \(String(cString: strerror(errno)))")) }
        var buffer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16384)
        func fill() -> Failure? {
            let count = recv(descriptor, &chunk, chunk.count, 0)
            if count > 0 { buffer += chunk[0..<count]; return nil }
            if count == 0 { return Failure(reason: "closed before a response") }
            return Failure(reason: errno == EAGAIN || errno == EWOULDBLOCK ? "timed out (5 s)" : "recv: \(String(cString: strerror(errno)))")
        }
        let separator: [UInt8] = Array("\r\n\r\n".utf8)
        var headerEnd: Range<Int>?
        while headerEnd == nil {
            if let failure = fill() { return .failure(failure) }
            headerEnd = buffer.firstRange(of: separator)
        }
        let head = String(decoding: buffer[..<headerEnd!.lowerBound], as: UTF8.self).lowercased().components(separatedBy: "\r\n")
        let statusWords = head.first?.split(separator: " ") ?? []
        guard statusWords.count >= 2, let status = Int(statusWords[1]) else { return .failure(Failure(reason: "unreadable status line")) }
        let headers = Dictionary(head.dropFirst().compactMap { line -> (String, String)? in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }, uniquingKeysWith: { $1 })
        var body = Array(buffer[headerEnd!.upperBound...])
        let keepAlive = headers["connection"] != "close"
        if let length = headers["content-length"].flatMap(Int.init) {
            while body.count < length {
                buffer = []
                if let failure = fill() { return .failure(failure) }
                body += buffer
            }
        } else if headers["transfer-encoding"] == "chunked" {
            // Read until the last chunk ("0\r\n\r\n"); the sizes themselves are not needed.
            let last: [UInt8] = Array("0\r\n\r\n".utf8)
            while body.firstRange(of: last) == nil {
                buffer = []
                if let failure = fill() { return .failure(failure) }
                body += buffer
            }
        } else if headers["connection"] == "close" {
            while true {
                buffer = []
                if fill() != nil { break }
            }
        }
        let firstLine = String(decoding: body.prefix(200).prefix { $0 != 10 }, as: UTF8.self)
        return .success((status, keepAlive, firstLine))
    }
}

struct LoadError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
