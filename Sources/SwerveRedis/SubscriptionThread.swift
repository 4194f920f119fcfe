import Glibc
import Logging
import SwerveErrors
import Synchronization

/// Lets any task stop a subscription thread that is blocked in `poll()`, and wait for it to end.
///
/// The thread polls the read end of a pipe beside its socket; ``requestStop()`` writes a byte
/// to the write end. The descriptors are closed by the thread when it ends, under the same lock
/// that guards the write, so a late stop never writes to a closed (or reused) descriptor.
final class SubscriptionControl: Sendable {
    private struct State {
        var stopRequested = false
        var descriptorsClosed = false
        var exited = false
        var exitWaiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())
    /// The pipe's read end; readable once a stop was requested.
    let wakeDescriptor: Int32
    private let signalDescriptor: Int32

    init() throws(RedisError) {
        var descriptors: [Int32] = [0, 0]
        guard pipe(&descriptors) == 0 else {
            throw RedisError(.closed, "cannot create the subscription's wake-up pipe: \(String(cString: strerror(errno)))")
        }
        for descriptor in descriptors {
            _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
            _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
        }
        wakeDescriptor = descriptors[0]
        signalDescriptor = descriptors[1]
    }

    var stopRequested: Bool { state.withLock { $0.stopRequested } }

    func requestStop() {
        state.withLock { state in
            guard !state.stopRequested else { return }
            state.stopRequested = true
            if !state.descriptorsClosed {
                var byte: UInt8 = 1
                _ = write(signalDescriptor, &byte, 1)
            }
        }
    }

    /// Called once by the thread as it ends.
    func threadExited() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.descriptorsClosed = true
            close(wakeDescriptor)
            close(signalDescriptor)
            state.exited = true
            defer { state.exitWaiters = [] }
            return state.exitWaiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Returns once the thread has ended and closed its connection.
    func waitForExit() async {
        await withCheckedContinuation { continuation in
            let resumeNow = state.withLock { state -> Bool in
                if state.exited { return true }
                state.exitWaiters.append(continuation)
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }
}

/// The loop run by a subscription's dedicated thread: connect, subscribe, wait with `poll()`
/// for data, a stop request or the health-check interval, and deliver what the
/// ``SubscriptionStateMachine`` decides.
struct SubscriptionThread {
    let configuration: RedisConfiguration
    let channels: [String]
    let patterns: [String]
    let healthCheckInterval: Duration
    let control: SubscriptionControl
    let continuation: AsyncStream<RedisSubscriptionEvent>.Continuation
    let logger: Logger

    func run() {
        var machine = SubscriptionStateMachine(backoff: configuration.reconnectBackoff, subscriptionCount: channels.count + patterns.count)
        var delivery = Delivery(continuation: continuation)
        defer {
            machine.stopRequested()
            continuation.finish()
            control.threadExited()
        }
        while !control.stopRequested {
            let connection: HiredisConnection
            do {
                connection = try HiredisConnection.open(configuration)
            } catch {
                logger.warning("subscription cannot connect to Redis", metadata: ["redis": "\(configuration)", "error": "\(error.message)"])
                for action in machine.connectFailed(error, random: Double.random(in: 0...1)) {
                    if case .backOff(let delay) = action { waitForStop(upTo: delay) } else { perform(action, &delivery, nil) }
                }
                continue
            }
            var sent = true
            if !channels.isEmpty { sent = connection.append([Array("SUBSCRIBE".utf8)] + channels.map { Array($0.utf8) }) }
            if !patterns.isEmpty { sent = sent && connection.append([Array("PSUBSCRIBE".utf8)] + patterns.map { Array($0.utf8) }) }
            machine.connected()
            do throws(RedisError) {
                guard sent else { throw RedisError(.connectionLost, "cannot queue SUBSCRIBE") }
                try connection.flush()
            } catch {
                for action in machine.connectionLost(error) { perform(action, &delivery, connection) }
                continue
            }
            listen(on: connection, &machine, &delivery)
        }
    }

    /// Reads from one connection until it breaks or a stop is requested.
    private func listen(on connection: HiredisConnection, _ machine: inout SubscriptionStateMachine, _ delivery: inout Delivery) {
        let interval = Int32(clamping: healthCheckInterval.milliseconds)
        while !control.stopRequested {
            var descriptors = [
                pollfd(fd: connection.fileDescriptor, events: Int16(POLLIN), revents: 0),
                pollfd(fd: control.wakeDescriptor, events: Int16(POLLIN), revents: 0),
            ]
            let ready = poll(&descriptors, 2, interval)
            if ready < 0 {
                if errno == EINTR { continue }
                let error = RedisError(.connectionLost, "poll() failed: \(String(cString: strerror(errno)))")
                for action in machine.connectionLost(error) { perform(action, &delivery, connection) }
                return
            }
            if descriptors[1].revents != 0 { continue }
            if connection.masterMoved(now: .now) {
                // A failover while this server still answers: what is published on the new
                // master may never reach it. Reconnect (the consumer hears of a possible gap).
                logger.warning("the sentinels name another master; resubscribing there", metadata: ["redis": "\(configuration)", "was": "\(connection.endpoint)"])
                for action in machine.connectionLost(RedisError(.connectionLost, "the sentinels name another master than \(connection.endpoint)")) {
                    perform(action, &delivery, connection)
                }
                return
            }
            let actions: [SubscriptionStateMachine.Action]
            if ready == 0 {
                actions = machine.idleIntervalPassed()
            } else {
                do {
                    actions = machine.repliesReceived(try connection.readAvailable())
                } catch {
                    logger.warning("subscription lost its Redis connection", metadata: ["redis": "\(configuration)", "error": "\(error.message)"])
                    for action in machine.connectionLost(error) { perform(action, &delivery, connection) }
                    return
                }
            }
            for action in actions {
                if case .dropConnection(let error) = action {
                    logger.warning("subscription dropped its Redis connection", metadata: ["redis": "\(configuration)", "error": "\(error.message)"])
                    // The machine's following actions tell the consumer; then reconnect.
                    continue
                }
                if !perform(action, &delivery, connection) {
                    for lost in machine.connectionLost(RedisError(.connectionLost, "cannot send PING to Redis at \(connection.endpoint)")) {
                        perform(lost, &delivery, connection)
                    }
                    return
                }
            }
            if actions.contains(where: { if case .dropConnection = $0 { return true } else { return false } }) { return }
        }
    }

    /// Performs one action; false if sending on the connection failed.
    @discardableResult
    private func perform(_ action: SubscriptionStateMachine.Action, _ delivery: inout Delivery, _ connection: HiredisConnection?) -> Bool {
        switch action {
        case .deliver(let event):
            delivery.deliver(event)
        case .sendPing:
            guard let connection, connection.append([Array("PING".utf8)]) else { return false }
            do { try connection.flush() } catch { return false }
        case .dropConnection, .backOff:
            break
        }
        return true
    }

    /// Sleeps up to `delay`, waking early when a stop is requested.
    private func waitForStop(upTo delay: Duration) {
        var descriptor = pollfd(fd: control.wakeDescriptor, events: Int16(POLLIN), revents: 0)
        _ = poll(&descriptor, 1, Int32(clamping: delay.milliseconds))
    }
}

/// Hands events to the consumer's bounded buffer. When the buffer is full an event is dropped,
/// and before the next event that fits the consumer is told `.mayHaveMissedMessages`.
struct Delivery {
    let continuation: AsyncStream<RedisSubscriptionEvent>.Continuation
    private var dropped = 0

    init(continuation: AsyncStream<RedisSubscriptionEvent>.Continuation) {
        self.continuation = continuation
    }

    mutating func deliver(_ event: RedisSubscriptionEvent) {
        if dropped > 0 {
            let notice = RedisSubscriptionEvent.mayHaveMissedMessages(reason: "the consumer fell behind and \(dropped) events were dropped")
            guard case .enqueued = continuation.yield(notice) else {
                dropped += 1
                return
            }
            dropped = 0
        }
        if case .dropped = continuation.yield(event) { dropped += 1 }
    }
}
