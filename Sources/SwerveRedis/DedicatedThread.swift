import Glibc

/// Starts `body` on a new OS thread of its own: the home of one blocking hiredis connection.
///
/// Swift's cooperative pool has one thread per core (two here); a blocking call made there
/// stalls every task. Each connection therefore gets a thread that only it uses, named so that
/// `top -H` and debuggers show what it is.
func startDedicatedThread(name: String, _ body: @escaping @Sendable () -> Void) {
    ignoreBrokenPipeSignal
    let start = Box { nameCurrentThread(name); body() }
    var thread = pthread_t()
    let created = pthread_create(&thread, nil, { argument in
        let start = Unmanaged<Box>.fromOpaque(argument!).takeRetainedValue()
        start.body()
        return nil
    }, Unmanaged.passRetained(start).toOpaque())
    precondition(created == 0, "pthread_create failed (\(created)): no thread for \(name)")
    pthread_detach(thread)
}

/// The body handed to the new thread (a closure cannot cross `pthread_create` by itself).
private final class Box: Sendable {
    let body: @Sendable () -> Void
    init(_ body: @escaping @Sendable () -> Void) { self.body = body }
}

/// hiredis writes with `write()`, so a write to a socket the server has closed raises SIGPIPE,
/// whose default action kills the whole process. Every process that uses this module therefore
/// ignores SIGPIPE (the write then fails with EPIPE and becomes `connectionLost`). Evaluated
/// once, before the first connection thread starts.
private let ignoreBrokenPipeSignal: Void = {
    _ = signal(SIGPIPE, SIG_IGN)
}()

/// Names the calling OS thread (what `top -H`, debuggers and /proc show) by writing Linux's
/// `/proc/thread-self/comm` (15 bytes at most).
private func nameCurrentThread(_ name: String) {
    let descriptor = open("/proc/thread-self/comm", O_WRONLY)
    guard descriptor >= 0 else { return }
    defer { close(descriptor) }
    let bytes = Array(name.utf8.prefix(15))
    _ = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
}
