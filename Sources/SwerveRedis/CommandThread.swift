import Dispatch
import Logging
import SwerveErrors
import Synchronization

/// The queue between callers (any task) and the one thread that owns a command connection.
///
/// It carries two kinds of work: requests (commands to send) and jobs (partial tasks that
/// prefer this thread, see ``RedisClient/withConnectionThread(_:)``). The thread takes
/// *everything* queued at once and sends the requests as one pipeline, so concurrent callers
/// share round trips (automatic pipelining). A request's commands stay contiguous, so
/// `MULTI … EXEC` sent as one pipeline is never interleaved with another caller's commands.
final class CommandQueue: Sendable {
    struct Request: Sendable {
        var commands: [RedisCommand]
        var timeout: Duration?
        var continuation: CheckedContinuation<Result<[RedisReply], RedisError>, Never>
    }

    enum Work: Sendable {
        case request(Request)
        case job(UnownedJob)
    }

    private struct State {
        var work: [Work] = []
        var closed = false
        /// Open `withConnectionThread` scopes: the thread keeps running their jobs even after
        /// a close, so a task that prefers it is never stranded.
        var preferenceScopes = 0
        /// The thread found nothing to do and is (about to be) blocked on `wakeup`.
        var sleeping = false

        /// Marks the state changed; true if the thread sleeps and must be woken (exactly once).
        mutating func needsWakeup() -> Bool {
            defer { sleeping = false }
            return sleeping
        }
    }

    private let state = Mutex(State())
    private let wakeup = DispatchSemaphore(value: 0)

    /// Queues a request; false (and nothing queued) once the queue is closed.
    func enqueue(_ request: Request) -> Bool {
        let (accepted, wake) = state.withLock { state -> (Bool, Bool) in
            guard !state.closed else { return (false, false) }
            state.work.append(.request(request))
            return (true, state.needsWakeup())
        }
        if wake { wakeup.signal() }
        return accepted
    }

    /// Queues a job; jobs are accepted until the thread has ended.
    func enqueue(_ job: UnownedJob) {
        if state.withLock({ $0.work.append(.job(job)); return $0.needsWakeup() }) { wakeup.signal() }
    }

    func close() {
        if state.withLock({ $0.closed = true; return $0.needsWakeup() }) { wakeup.signal() }
    }

    func preferenceScopeEntered() {
        state.withLock { $0.preferenceScopes += 1 }
    }

    func preferenceScopeLeft() {
        if state.withLock({ $0.preferenceScopes -= 1; return $0.needsWakeup() }) { wakeup.signal() }
    }

    /// Blocks the calling (dedicated) thread until there is work or the queue is closed, then
    /// takes all of it. `finished` is true once the queue is closed and no scope needs the thread.
    ///
    /// It first spins for a few microseconds, looking under the (uncontended, syscall-free)
    /// lock: a caller that just got its reply usually sends its next command within that time,
    /// and catching it awake saves a futex wake-up on both sides. Only then does it mark itself
    /// sleeping and block; producers signal the semaphore only when they see that mark, so each
    /// sleep gets exactly one signal and no wake-up is lost.
    func waitAndTakeAll() -> (work: [Work], closed: Bool, finished: Bool) {
        let spinUntil = ContinuousClock.now + .microseconds(20)
        enum Next { case take(work: [Work], closed: Bool, finished: Bool), spin, sleep }
        while true {
            let next = state.withLock { state -> Next in
                let finished = state.closed && state.preferenceScopes == 0
                guard !state.work.isEmpty || finished else {
                    guard ContinuousClock.now >= spinUntil else { return .spin }
                    state.sleeping = true
                    return .sleep
                }
                let work = state.work
                state.work.removeAll(keepingCapacity: true)
                return .take(work: work, closed: state.closed, finished: finished && work.isEmpty)
            }
            switch next {
            case .take(let work, let closed, let finished): return (work, closed, finished)
            case .spin: continue
            // Marked sleeping under the lock: the next producer clears the mark and signals once.
            case .sleep: wakeup.wait()
            }
        }
    }
}

/// Runs the jobs of tasks that prefer a connection's thread (`withTaskExecutorPreference`),
/// on that thread, between round trips.
final class ConnectionExecutor: TaskExecutor {
    let queue: CommandQueue

    init(queue: CommandQueue) { self.queue = queue }

    func enqueue(_ job: consuming ExecutorJob) {
        queue.enqueue(UnownedJob(job))
    }
}

/// The loop run by a command connection's dedicated thread: take queued requests, ask the
/// ``ConnectionStateMachine`` what to do, do it, resume the callers.
struct CommandThread {
    let executor: ConnectionExecutor
    let configuration: RedisConfiguration
    let logger: Logger

    func run() {
        var machine = ConnectionStateMachine(backoff: configuration.reconnectBackoff, serverDescription: configuration.description)
        var connection: HiredisConnection?
        while true {
            let (work, closed, finished) = executor.queue.waitAndTakeAll()
            var requests: [CommandQueue.Request] = []
            for item in work {
                switch item {
                case .request(let request): requests.append(request)
                case .job(let job): job.runSynchronously(on: executor.asUnownedTaskExecutor())
                }
            }
            if closed {
                machine.closeRequested()
                connection = nil
                let error = RedisError(.closed, "the Redis client for \(configuration.description) is closed")
                for request in requests { request.continuation.resume(returning: .failure(error)) }
                if finished { return }
                continue
            }
            guard !requests.isEmpty else { continue }

            if let open = connection, open.isBroken() {
                logger.info("Redis connection found closed by the server; reconnecting", metadata: ["redis": "\(configuration)"])
                connection = nil
                machine.connectionLost()
            } else if let open = connection, open.masterMoved(now: .now) {
                logger.warning("the sentinels name another master; reconnecting", metadata: ["redis": "\(configuration)", "was": "\(open.endpoint)"])
                connection = nil
                machine.connectionLost()
            }
            switch machine.commandsArrived(now: .now) {
            case .fail(let error):
                for request in requests { request.continuation.resume(returning: .failure(error)) }
                continue
            case .connectThenSend:
                do {
                    connection = try HiredisConnection.open(configuration)
                    machine.connectSucceeded()
                    logger.debug("connected to Redis", metadata: ["redis": "\(configuration)"])
                } catch {
                    machine.connectFailed(error, now: .now, random: Double.random(in: 0...1))
                    logger.warning("cannot connect to Redis", metadata: ["redis": "\(configuration)", "error": "\(error.message)"])
                    for request in requests { request.continuation.resume(returning: .failure(error)) }
                    continue
                }
            case .send:
                break
            }
            guard let open = connection else { continue }
            switch send(requests, on: open) {
            case .healthy:
                break
            case .lost(let lost):
                logger.warning("lost the Redis connection", metadata: ["redis": "\(configuration)", "error": "\(lost.message)"])
                connection = nil
                machine.connectionLost()
            case .demoted:
                // The server became a replica (a failover): the next request finds the master anew.
                logger.warning("Redis answered READONLY: it is a replica now; reconnecting", metadata: ["redis": "\(configuration)", "was": "\(open.endpoint)"])
                connection = nil
                machine.connectionLost()
            }
        }
    }

    /// What a pipeline left of its connection.
    enum Outcome {
        case healthy
        /// The error that broke it.
        case lost(RedisError)
        /// A command answered `READONLY`: the server is a replica now, the connection useless.
        case demoted
    }

    /// Sends all requests as one pipeline and resumes each caller; says what became of the
    /// connection.
    private func send(_ requests: [CommandQueue.Request], on connection: HiredisConnection) -> Outcome {
        let commands = requests.flatMap(\.commands)
        // Requests share one socket timeout: the longest any of them allows.
        let timeout = requests.map { $0.timeout ?? configuration.commandTimeout }.max()
        var (replies, error) = connection.execute(commands, timeout: timeout)

        // A single script call answered NOSCRIPT (someone ran SCRIPT FLUSH): it did not run, so
        // load it and run it again. Inside a longer pipeline it would change the order of
        // effects, so there the NOSCRIPT reply is returned as it is.
        if error == nil {
            var retryIndices: [Int] = []
            var offset = 0
            for request in requests {
                if request.commands.count == 1, request.commands[0].script != nil,
                   replies[offset].errorMessage?.hasPrefix("NOSCRIPT") == true {
                    retryIndices.append(offset)
                }
                offset += request.commands.count
            }
            if !retryIndices.isEmpty {
                let retried = connection.execute(retryIndices.map { commands[$0] }, timeout: timeout)
                for (position, index) in retryIndices.enumerated() where position < retried.replies.count {
                    replies[index] = retried.replies[position]
                }
                error = retried.error
            }
        }

        var offset = 0
        for request in requests {
            let end = offset + request.commands.count
            if end <= replies.count {
                request.continuation.resume(returning: .success(Array(replies[offset..<end])))
            } else {
                request.continuation.resume(returning: .failure(error ?? RedisError(.connectionLost, "connection to Redis at \(connection.endpoint) lost")))
            }
            offset = end
        }
        if let error { return .lost(error) }
        return replies.contains { $0.errorMessage?.hasPrefix("READONLY") == true } ? .demoted : .healthy
    }
}
