public import Dispatch
import Glibc

/// Turns SIGTERM into calls of `handler` (on a Dispatch queue) instead of its default action,
/// exiting. Keep the returned source; cancel it to stop listening.
public func handleTermination(_ handler: @escaping @Sendable () -> Void) -> any DispatchSourceSignal {
    signal(SIGTERM, SIG_IGN)
    let source = DispatchSource.makeSignalSource(signal: SIGTERM)
    source.setEventHandler(handler: handler)
    source.resume()
    return source
}
