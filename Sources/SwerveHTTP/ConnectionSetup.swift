public import Logging
import Metrics
public import NIOCore
import Synchronization

/// How every TCP connection Swerve's HTTP code accepts or opens is set up: the router's client
/// and replica connections, and the built-in worker's.
///
/// Guarantees:
/// - `TCP_NODELAY` is set at the TCP level (`IPPROTO_TCP`). (Passed as a socket-level option,
///   its number is `SO_DEBUG`: root silently gets socket debugging and Nagle's algorithm,
///   anyone else gets `EACCES` and a reset connection.)
/// - No setup failure is silent. Each is counted in
///   `swerve_connection_setup_failures_total{server,stage}` (swift-metrics: exported where the
///   process serves Prometheus metrics) and logged at error level the first time its stage
///   and reason are seen (then only counted, so a flood of connections cannot flood the log).
/// - A connection whose `TCP_NODELAY` cannot be set is still served (slower, never dropped);
///   one whose pipeline cannot be built is closed, after the failure is recorded.
public final class ConnectionSetup: Sendable {
    /// Where setting up a connection can fail.
    public enum Stage: String, Sendable {
        /// Setting `TCP_NODELAY`.
        case noDelay = "tcp_nodelay"
        /// Adding the connection's handlers.
        case pipeline
    }

    /// The server or client the connections belong to (`router`, `router-upstream`, `worker`).
    public let server: String
    private let logger: Logger
    private let state = Mutex(Failures())

    private struct Failures {
        var counts: [Stage: Int] = [:]
        var counters: [Stage: Counter] = [:]
        /// Stage and reason of each failure logged; bounded, so endless new reasons cannot grow it.
        var logged: Set<String> = []
    }

    public init(server: String, logger: Logger) {
        self.server = server
        self.logger = logger
    }

    /// Sets up `channel` (accepted or opened): `TCP_NODELAY`, then `pipeline`, on the
    /// channel's event loop. Fails (so the connection is closed) only when `pipeline` throws.
    public func configure(_ channel: any Channel,
                          pipeline: @escaping @Sendable (ChannelPipeline.SynchronousOperations) throws -> Void) -> EventLoopFuture<Void> {
        channel.eventLoop.makeCompletedFuture {
            do {
                try channel.syncOptions?.setOption(.tcpOption(.tcp_nodelay), value: 1)
            } catch {
                failed(.noDelay, error, peer: channel.remoteAddress)
            }
            do {
                try pipeline(channel.pipeline.syncOperations)
            } catch {
                failed(.pipeline, error, peer: channel.remoteAddress)
                throw error
            }
        }
    }

    /// Records a failure: counted always, logged once per stage and reason.
    public func failed(_ stage: Stage, _ error: any Error, peer: SocketAddress?) {
        let reason = "\(error)"
        let (counter, first) = state.withLock { state in
            state.counts[stage, default: 0] += 1
            let counter = state.counters[stage] ?? Counter(label: "swerve_connection_setup_failures_total",
                                                           dimensions: [("server", server), ("stage", stage.rawValue)])
            state.counters[stage] = counter
            let first = state.logged.count < 64 && state.logged.insert("\(stage.rawValue)|\(reason)").inserted
            return (counter, first)
        }
        counter.increment()
        guard first else { return }
        logger.error("cannot set up a connection (logged once per reason; counted in swerve_connection_setup_failures_total)",
                     metadata: ["server": "\(server)", "stage": "\(stage.rawValue)", "reason": "\(reason)",
                                "peer": "\(peer.map { "\($0)" } ?? "?")"])
    }

    /// How many failures of `stage` were recorded (what the metric counts).
    public func failures(_ stage: Stage) -> Int {
        state.withLock { $0.counts[stage, default: 0] }
    }
}
