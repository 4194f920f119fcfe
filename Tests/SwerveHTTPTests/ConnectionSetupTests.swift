import Logging
import NIOCore
import NIOEmbedded
import SwerveHTTP
import Synchronization
import Testing

/// Every connection gets TCP_NODELAY at the TCP level, and no setup failure is silent.
@Suite struct ConnectionSetupTests {
    /// Collects what was logged.
    final class Lines: Sendable {
        let lines = Mutex<[String]>([])
        var all: [String] { lines.withLock { $0 } }
        func logger() -> Logger {
            Logger(label: "test") { _ in Handler(lines: self) }
        }
        struct Handler: LogHandler {
            let lines: Lines
            var metadata: Logger.Metadata = [:]
            var logLevel: Logger.Level = .trace
            subscript(metadataKey key: String) -> Logger.Metadata.Value? {
                get { metadata[key] }
                set { metadata[key] = newValue }
            }
            func log(event: LogEvent) {
                let all = metadata.merging(event.metadata ?? [:]) { $1 }
                lines.lines.withLock { $0.append("\(event.level) \(event.message) \(all.sorted { $0.key < $1.key })") }
            }
        }
    }

    struct Refused: Error, CustomStringConvertible {
        var description: String { "refused by the test" }
    }

    @Test func noDelayIsSetAtTheTCPLevel() throws {
        let channel = EmbeddedChannel()
        let setup = ConnectionSetup(server: "test", logger: Lines().logger())
        try setup.configure(channel) { _ in }.wait()
        // At the TCP level (IPPROTO_TCP); as a socket-level option its number is SO_DEBUG.
        #expect(try channel.syncOptions?.getOption(.tcpOption(.tcp_nodelay)) == 1)
        #expect(ChannelOptions.tcpOption(.tcp_nodelay).level == NIOBSDSocket.OptionLevel.tcp.rawValue)
        #expect(setup.failures(.noDelay) == 0)
        _ = try channel.finish()
    }

    @Test func aPipelineThatCannotBeBuiltIsCountedLoggedAndFailsTheConnection() throws {
        let lines = Lines()
        let channel = EmbeddedChannel()
        let setup = ConnectionSetup(server: "router", logger: lines.logger())
        #expect(throws: Refused.self) { try setup.configure(channel) { _ in throw Refused() }.wait() }
        #expect(setup.failures(.pipeline) == 1)
        #expect(lines.all.count == 1)
        #expect(lines.all.first?.contains("refused by the test") == true)
        #expect(lines.all.first?.contains("router") == true)
        _ = try? channel.finish()
    }

    @Test func aFailedNoDelayIsCountedAndTheConnectionStillServes() throws {
        let lines = Lines()
        let channel = EmbeddedChannel()
        let setup = ConnectionSetup(server: "worker", logger: lines.logger())
        channel.allowOptionsWhenClosed = false
        try channel.close().wait()  // now setting an option throws, as a refused setsockopt does
        let built = Mutex(false)
        try setup.configure(channel) { _ in built.withLock { $0 = true } }.wait()
        #expect(setup.failures(.noDelay) == 1)
        #expect(built.withLock { $0 })
        #expect(lines.all.first?.contains("tcp_nodelay") == true)
    }

    @Test func eachReasonIsLoggedOnceAndCountedEveryTime() throws {
        let lines = Lines()
        let setup = ConnectionSetup(server: "router", logger: lines.logger())
        for _ in 0..<5 {
            setup.failed(.pipeline, Refused(), peer: nil)
        }
        #expect(setup.failures(.pipeline) == 5)
        #expect(lines.all.count == 1)
    }
}
