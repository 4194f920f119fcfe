import Foundation

/// Starts `body` on a new OS thread of its own: the home of one blocking hiredis connection.
///
/// Swift's cooperative pool has one thread per core (two here); a blocking call made there
/// stalls every task. Each connection therefore gets a thread that only it uses, named so that
/// `top -H` and debuggers show what it is.
func startDedicatedThread(name: String, _ body: @escaping @Sendable () -> Void) {
    ignoreBrokenPipeSignal
    let thread = Thread {
        // Set from inside: on Linux, a name given before start() is not applied to the OS thread.
        Thread.current.name = name
        body()
    }
    thread.start()
}

/// hiredis writes with `write()`, so a write to a socket the server has closed raises SIGPIPE,
/// whose default action kills the whole process. Every process that uses this module therefore
/// ignores SIGPIPE (the write then fails with EPIPE and becomes `connectionLost`). Evaluated
/// once, before the first connection thread starts.
private let ignoreBrokenPipeSignal: Void = {
    _ = signal(SIGPIPE, SIG_IGN)
}()
