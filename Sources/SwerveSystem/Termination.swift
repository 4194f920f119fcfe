public import Dispatch
import Glibc

/// The signals that ask a Swerve process to stop gracefully: SIGTERM (an init system, an
/// orchestrator, `kill`) and SIGINT (Ctrl-C). Both take the same path — a controller releases
/// its lease, a node agent drains its node, a worker drains — so that which key an operator
/// pressed never decides whether a request is lost.
public let terminationSignals: [Int32] = [SIGTERM, SIGINT]

/// A handle on the signal sources ``handleTermination(_:)`` installed.
public struct TerminationHandler {
    private let sources: [any DispatchSourceSignal]

    fileprivate init(sources: [any DispatchSourceSignal]) { self.sources = sources }

    /// Stops listening (the signals stay ignored, so a late one cannot kill the process
    /// half-way through its shutdown).
    public func cancel() { for source in sources { source.cancel() } }
}

/// Turns SIGTERM and SIGINT into calls of `handler` (on a Dispatch queue) instead of their
/// default action, exiting. Keep the returned handle; cancel it to stop listening.
public func handleTermination(_ handler: @escaping @Sendable () -> Void) -> TerminationHandler {
    let sources = terminationSignals.map { number -> any DispatchSourceSignal in
        signal(number, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: number)
        source.setEventHandler(handler: handler)
        source.resume()
        return source
    }
    return TerminationHandler(sources: sources)
}
