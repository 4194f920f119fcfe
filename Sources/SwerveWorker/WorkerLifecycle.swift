import SwerveCore
/// A worker's life as a pure state machine: what to do when its code is ready, when its health
/// changes, after a reconnect, when a drain is requested, as time passes and requests finish.
///
/// States:
/// - `starting`: the code is not serving yet;
/// - `ready`: serving; the ready record is written once (its node's heartbeat vouches for it),
///   retracted while the code is unhealthy, and written again after a reconnect (Redis may have
///   lost it);
/// - `draining(acceptUntil:deadline:)`: asked to drain; still accepting stragglers from routers
///   that have not seen it leave until `acceptUntil` (the backend's wait loop);
/// - `closing(deadline:)`: the listener is closed (new connections are refused, which routers
///   may safely retry elsewhere); waiting for in-flight requests to finish;
/// - `stoppingCode`: nothing in flight; the code is being stopped;
/// - `drained`: done; the worker exits 0.
struct WorkerLifecycle: Sendable, Equatable {
    enum State: Sendable, Equatable {
        case starting
        case ready
        case draining(acceptUntil: Timestamp, deadline: Timestamp)
        case closing(deadline: Timestamp)
        case stoppingCode
        case drained
    }

    enum Action: Sendable, Equatable {
        /// Write the ready record (and mark the replica changed, and wake the leader); `announce`
        /// the first time (logged).
        case writeReady(announce: Bool)
        /// Delete the ready record (and mark the replica changed, and wake the leader): the code
        /// is unhealthy, the leader replaces the replica.
        case retractReady
        /// Close the listening socket.
        case stopAccepting
        /// Stop the replica's code (SIGTERM to a command) and report `codeStopped`.
        case stopCode
        /// Write the drained key, delete the ready key, publish `drained`, exit 0.
        case finishDrain
    }

    private(set) var state: State = .starting
    /// The code's last health probe (a built-in is healthy while it runs).
    private(set) var healthy = true

    mutating func codeBecameReady() -> [Action] {
        guard state == .starting else { return [] }
        state = .ready
        return [.writeReady(announce: true)]
    }

    /// The worker reconnected to Redis (which may have restarted or failed over and lost the
    /// ready record): write it again while ready and healthy.
    mutating func reconnected() -> [Action] {
        holdsReadyRecord ? [.writeReady(announce: false)] : []
    }

    /// Whether the ready record should exist now: ready and healthy.
    var holdsReadyRecord: Bool { state == .ready && healthy }

    /// A health probe answered. A change while ready retracts or restores the ready record.
    mutating func healthProbed(healthy now: Bool) -> [Action] {
        guard now != healthy else { return [] }
        healthy = now
        guard state == .ready else { return [] }
        return [now ? .writeReady(announce: false) : .retractReady]
    }

    /// A drain request was read. Repeated requests change nothing; a forced one means no
    /// draining at all (the node agent kills this worker), so it changes nothing either.
    mutating func drainRequested(now: Timestamp, waitLoopS: Double, deadline: Timestamp, force: Bool = false, inFlight: Int) -> [Action] {
        guard !force else { return [] }
        switch state {
        case .starting, .ready:
            let acceptUntil = min(deadline, now.adding(seconds: waitLoopS))
            state = .draining(acceptUntil: acceptUntil, deadline: deadline)
            return timePassed(now: now, inFlight: inFlight)
        default:
            return []
        }
    }

    /// Called periodically while draining, and whenever a request finishes.
    mutating func timePassed(now: Timestamp, inFlight: Int) -> [Action] {
        switch state {
        case .draining(let acceptUntil, let deadline) where now >= acceptUntil:
            state = .closing(deadline: deadline)
            return [.stopAccepting] + timePassed(now: now, inFlight: inFlight)
        case .closing where inFlight == 0:
            state = .stoppingCode
            return [.stopCode]
        default:
            return []
        }
    }

    /// When ``timePassed(now:inFlight:)`` next has something to do by the clock alone (nil:
    /// nothing until a request finishes or an event arrives): the end of the wait loop.
    var nextDeadline: Timestamp? {
        if case .draining(let acceptUntil, _) = state { return acceptUntil }
        return nil
    }

    mutating func codeStopped() -> [Action] {
        guard state == .stoppingCode else { return [] }
        state = .drained
        return [.finishDrain]
    }

    /// Whether a new request may be accepted now.
    var acceptsRequests: Bool {
        switch state {
        case .ready, .draining: return true
        default: return false
        }
    }
}
