import CoreMetrics
import Foundation
public import Logging
import SwerveCore
public import SwerveErrors
public import SwerveProtocol
public import SwerveRedis
import SwerveSystem
import Synchronization

/// Who this controller is, as the leader record shows it.
public struct ControllerIdentity: Sendable, Hashable {
    public var id: String
    public var host: String
    public var pid: Int32
    public var address: String?

    public init(id: String, host: String, pid: Int32, address: String? = nil) {
        self.id = id
        self.host = host
        self.pid = pid
        self.address = address
    }
}

/// One term of leadership: its fencing epoch, and the only way to write while leading.
public struct LeadershipScope: Sendable {
    public let epoch: Int64
    /// The id of the controller leading this term.
    public let controllerID: String
    /// `"<controllerId>:<epoch>"`: the lease value every fenced script checks.
    public let leaseValue: String
    let keys: ClusterKeys
    let client: RedisClient
    /// Counts the bytes written (`swerve_controller_written_bytes_total`).
    let metrics: ControllerMetrics
    let refused: @Sendable () -> Void

    /// Runs fenced calls in order, in one round trip, in batches (``FencedBatch``: one script
    /// run, one fence check for many calls). Throws at the first refusal: the calls after it in
    /// its batch did not run, and every later batch checks the lease itself. A `trailing`
    /// command (a `WAIT` for what they wrote) goes in the same round trip; its reply comes last,
    /// unchecked. Returns one reply per call, then the trailing one.
    @discardableResult
    public func writeAll(_ calls: [FencedCall], then trailing: RedisCommand? = nil) async throws -> [RedisReply] {
        guard !calls.isEmpty || trailing != nil else { return [] }
        let batches = FencedBatch.commands(calls, lease: keys.lease, leaseValue: leaseValue)
        for batch in batches {
            for (call, count) in batch.bytes { metrics.wrote(count, call: call) }
        }
        let replies = try await client.pipeline(batches.map(\.command) + (trailing.map { [$0] } ?? []))
        var perCall: [RedisReply] = []
        perCall.reserveCapacity(calls.count + 1)
        for (batch, reply) in zip(batches, replies) { perCall += FencedBatch.replies(of: batch, reply) }
        for reply in perCall { try check(reply) }
        if trailing != nil, let last = replies.last { perCall.append(last) }
        return perCall
    }

    /// The command that runs `call` under this term's lease, for a caller's own pipeline (whose
    /// reply it must pass to ``check(_:)``).
    func command(_ call: FencedCall) -> RedisCommand {
        call.command(lease: keys.lease, leaseValue: leaseValue)
    }

    /// Throws if a fenced call's reply is a refusal: ``LeaseError/Code/fenced`` (ending this
    /// leadership at once) when the lease moved on, a ``RedisError`` for anything else.
    func check(_ reply: RedisReply) throws {
        guard let message = reply.errorMessage else { return }
        if message.hasPrefix("FENCED") {
            refused()
            throw LeaseError(.fenced, "write refused under epoch \(epoch): \(message)")
        }
        throw RedisError(.server, "Redis refused a fenced script: \(message)")
    }

    /// Runs a fenced script: it changes nothing unless the lease still holds ``leaseValue``.
    /// A refusal throws ``LeaseError/Code/fenced`` and ends this leadership at once.
    @discardableResult
    public func write(_ call: FencedCall) async throws -> RedisReply {
        try await writeAll([call])[0]
    }
}

/// Elects a leader among controllers with a Redis lease and a fencing epoch; see
/// ``LeaseStateMachine`` for what the lease guarantees and what only fencing does.
///
/// ``run(whileLeading:)`` runs until its task is cancelled. Each time this controller becomes
/// leader it calls `whileLeading` in a child task with a ``LeadershipScope``, and cancels that
/// task the moment leadership ends (trust expired, a renew or a fenced write refused). On
/// cancellation a leader releases its lease and announces it, so a follower takes over at once.
public final class LeaseElector: Sendable {
    enum Event: Sendable {
        case tick
        case leaderLeft
        /// This process's presence channel is subscribed (true) or its connection was lost.
        case presence(Bool)
        case fencedWriteRefused
        /// The acquire script answered (nil: someone else holds the lease) or failed.
        case acquireAnswered(epoch: Int64?)
        case acquireFailed
        /// A renew of `epoch`'s lease answered or failed.
        case renewAnswered(epoch: Int64, ok: Bool)
        case renewFailed(epoch: Int64)
        /// The term's work returned (when not cancelled: by its own choice).
        case termEnded(epoch: Int64)
    }

    let keys: ClusterKeys
    /// The connection the lease is acquired, renewed and released on.
    let client: RedisClient
    /// The connection a term's fenced writes go on (``LeadershipScope/client``).
    let writeClient: RedisClient
    let subscriberConfiguration: RedisConfiguration
    let identity: ControllerIdentity
    let timing: LeaseStateMachine.Timing
    let logger: Logger
    let metrics: ControllerMetrics
    /// The channel this process stays subscribed to while it lives (``ClusterKeys/presence(_:)``):
    /// its id and a random token, so that no other process — nor this one's restart — shares it.
    let presenceChannel: String
    private let refused = Atomic<Int>(0)
    /// The last acquire attempt failed: a follower tries every 20 ms, so an outage is logged
    /// when it begins and when it ends, not at each try.
    private let acquireFailing = Atomic<Bool>(false)

    /// Fenced writes refused so far (a metric).
    public var refusedWrites: Int { refused.load(ordering: .relaxed) }

    /// - Throws: ``LeaseError/Code/invalidTiming`` when the TTL, renew interval, margin and retry
    ///   period do not fit together (see ``LeaseStateMachine/Timing/problem``).
    /// `renewInterval` and `retryPeriod` default to ``LeaseStateMachine/Timing/defaults(ttl:)``'s. `writeClient` (default:
    /// `client`) carries the term's writes: give it a connection of its own, or renewals queue
    /// behind a large step (a 20 MB checkpoint, 100,000 assignments) and the lease runs out
    /// while the leader is working.
    public init(keys: ClusterKeys, client: RedisClient, writeClient: RedisClient? = nil, identity: ControllerIdentity, ttl: Duration = ControllerConfiguration.defaultLeaseTTL,
                renewInterval: Duration? = nil, retryPeriod: Duration? = nil, metrics: ControllerMetrics = ControllerMetrics(), logger: Logger) throws {
        var timing = LeaseStateMachine.Timing.defaults(ttl: ttl)
        if let renewInterval { timing.renewInterval = renewInterval }
        if let retryPeriod { timing.retryPeriod = retryPeriod }
        if let problem = timing.problem { throw LeaseError(.invalidTiming, "invalid lease timing: \(problem)") }
        self.keys = keys
        self.client = client
        self.writeClient = writeClient ?? client
        self.subscriberConfiguration = client.configuration
        self.identity = identity
        self.timing = timing
        self.logger = logger
        self.metrics = metrics
        self.presenceChannel = keys.presence(identity.id + ":" + String(UInt64.random(in: 0...UInt64.max), radix: 36))
    }

    public func run(whileLeading: @escaping @Sendable (LeadershipScope) async -> Void) async {
        let (events, continuation) = AsyncStream.makeStream(of: Event.self)
        // The first try waits for the presence subscription (a lease taken without it can only
        // expire, never be taken over), but not for long: a controller that cannot subscribe
        // can still lead.
        var machine = LeaseStateMachine(timing: timing, now: .now + Self.presenceWait)
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                // Ends the event loop when this task is cancelled.
                while !Task.isCancelled { try? await Task.sleep(for: .seconds(3600)) }
                continuation.finish()
            }
            // Not a child of this group: the subscription is this process's presence, and must
            // outlive the term's cancellation until the lease is released (else a follower takes
            // a lease that is about to be released, while the term still winds down).
            let subscription = Task { [keys, logger, subscriberConfiguration, identity, presenceChannel] in
                let subscriber = RedisSubscriber(configuration: subscriberConfiguration, logger: logger)
                try? await subscriber.subscribe(to: [keys.leaderEvents, presenceChannel]) { subscription in
                    for await event in subscription {
                        switch event {
                        case .subscribed, .mayHaveMissedMessages:
                            continuation.yield(.presence(true))
                        case .disconnected:
                            continuation.yield(.presence(false))
                        case .message(let message):
                            if let announced = try? DocumentCodec.decode(LeaderEvent.self, from: message.payload, source: keys.leaderEvents),
                               announced.event == .left, announced.id != identity.id {
                                continuation.yield(.leaderLeft)
                            }
                        }
                    }
                }
            }
            // One timer, armed for the machine's next deadline (no periodic tick: an idle
            // leader wakes only to renew).
            var timer: (deadline: ContinuousClock.Instant, task: Task<Void, Never>)?
            func arm() {
                guard let deadline = machine.nextDeadline else {
                    timer?.task.cancel()
                    timer = nil
                    return
                }
                if let timer, timer.deadline == deadline { return }
                timer?.task.cancel()
                timer = (deadline, Task {
                    // Only once the deadline has passed by the clock the machine reads: a sleep
                    // that ends a hair early would yield a tick that does nothing, and the timer,
                    // armed for the same deadline, would not be armed again — a leader that
                    // neither renews nor steps down (found by CI: leases expiring under leaders).
                    do {
                        while ContinuousClock.now < deadline { try await Task.sleep(until: deadline, clock: .continuous) }
                    } catch {
                        return  // cancelled: re-armed or shutting down
                    }
                    continuation.yield(.tick)
                })
            }
            arm()
            var present = false
            var term: Task<Void, Never>?
            for await event in events {
                var actions: [LeaseStateMachine.Action]
                switch event {
                case .tick: actions = machine.timePassed(now: .now)
                case .leaderLeft: actions = machine.leaderLeft(now: .now)
                case .presence(let subscribed):
                    present = subscribed
                    actions = subscribed ? machine.presenceConfirmed(now: .now) : []
                case .fencedWriteRefused:
                    actions = machine.fencedWriteRefused(now: .now)
                case .termEnded(let epoch):
                    actions = machine.termEnded(epoch: epoch, now: .now)
                // An answer counts only for the request the machine still waits on: one that
                // comes after the machine stepped down (its deadline passed first) changes nothing.
                case .acquireAnswered(let epoch):
                    actions = machine.isAcquiring ? machine.acquireAnswered(epoch: epoch, now: .now) : []
                case .acquireFailed:
                    actions = machine.isAcquiring ? machine.requestFailed(now: .now) : []
                case .renewAnswered(let epoch, let ok):
                    actions = machine.isRenewing(epoch) ? machine.renewAnswered(ok: ok, now: .now) : []
                case .renewFailed(let epoch):
                    actions = machine.isRenewing(epoch) ? machine.requestFailed(now: .now) : []
                }
                while !actions.isEmpty {
                    var next: [LeaseStateMachine.Action] = []
                    for action in actions {
                        next += await perform(action, machine: &machine, term: &term, present: present, whileLeading: whileLeading,
                                              continuation: continuation)
                    }
                    actions = next
                }
                arm()
            }
            // Cancelled: leave cleanly.
            timer?.task.cancel()
            for action in machine.shutdownRequested() {
                _ = await perform(action, machine: &machine, term: &term, present: present, whileLeading: whileLeading, continuation: continuation)
            }
            subscription.cancel()
            await subscription.value
            group.cancelAll()
        }
    }

    /// Performs `action`. `present`: this process's presence channel is subscribed, so the
    /// lease may name it (a lease acquired while it is not can only expire, never be taken over).
    private func perform(_ action: LeaseStateMachine.Action, machine: inout LeaseStateMachine, term: inout Task<Void, Never>?, present: Bool,
                         whileLeading: @escaping @Sendable (LeadershipScope) async -> Void,
                         continuation: AsyncStream<Event>.Continuation) async -> [LeaseStateMachine.Action] {
        switch action {
        // The lease scripts run beside the event loop, never in it: a call blocked on a Redis
        // that stopped answering (a partition drops packets; the command timeout is seconds)
        // must not hold back the ticks that end the term when its trust runs out.
        case .tryAcquire:
            let record = LeaderRecord(id: identity.id, epoch: 0, host: identity.host, pid: identity.pid, address: identity.address,
                                      since: wallClockNow())
            Task { [client, keys, timing, logger, known = machine.highestEpoch, channel = present ? presenceChannel : ""] in
                do {
                    let reply = try await client.run(LeaseScripts.acquire,
                                                     keys: [keys.lease, keys.epoch, keys.leader, keys.leasePresence, keys.checkpointEpoch],
                                                     arguments: [identity.id, timing.ttl.wholeMilliseconds, DocumentCodec.encode(record), known, channel])
                    if acquireFailing.exchange(false, ordering: .relaxed) { logger.info("can try for the lease again") }
                    let answer = reply.array
                    if let previous = answer?.last?.string, !previous.isEmpty {
                        logger.warning("took the lease over: its holder's process has no connection left", metadata: ["previous": "\(previous)"])
                    }
                    continuation.yield(.acquireAnswered(epoch: answer?.first?.integer))
                } catch {
                    if !acquireFailing.exchange(true, ordering: .relaxed) {
                        logger.warning("cannot try for the lease (logged again when it can)", metadata: ["error": "\(error)"])
                    }
                    continuation.yield(.acquireFailed)
                }
            }
            return []
        case .renew(let epoch):
            let value = leaseValue(epoch)
            Task { [client, keys, timing, logger, channel = present ? presenceChannel : ""] in
                do {
                    let reply = try await client.run(LeaseScripts.renew, keys: [keys.lease, keys.leader, keys.leasePresence],
                                                     arguments: [value, timing.ttl.wholeMilliseconds, channel])
                    continuation.yield(.renewAnswered(epoch: epoch, ok: reply.integer == 1))
                } catch {
                    logger.warning("cannot renew the lease", metadata: ["error": "\(error)", "epoch": "\(epoch)"])
                    continuation.yield(.renewFailed(epoch: epoch))
                }
            }
            return []
        case .becameLeader(let epoch):
            logger.info("leading", metadata: ["epoch": "\(epoch)"])
            metrics.leading(epoch: epoch)
            _ = try? await client.send("PUBLISH", keys.leaderEvents, DocumentCodec.encode(LeaderEvent(event: .elected, id: identity.id, epoch: epoch)))
            let scope = LeadershipScope(epoch: epoch, controllerID: identity.id, leaseValue: leaseValue(epoch), keys: keys, client: writeClient,
                                        metrics: metrics,
                                        refused: { [self] in
                                            // Counted before the write's caller sees the error.
                                            refused.add(1, ordering: .relaxed)
                                            metrics.fencedWritesRefused.increment()
                                            continuation.yield(.fencedWriteRefused)
                                        })
            term = Task {
                await whileLeading(scope)
                if !Task.isCancelled { continuation.yield(.termEnded(epoch: epoch)) }
            }
            return []
        case .steppedDown(let epoch, let reason):
            logger.warning("stepped down", metadata: ["epoch": "\(epoch)", "reason": "\(reason)"])
            metrics.following()
            term?.cancel()
            // Its writes are fenced; waiting keeps one term at a time in this process.
            _ = await term?.value
            term = nil
            return []
        case .release(let epoch):
            let message = DocumentCodec.encode(LeaderEvent(event: .left, id: identity.id, epoch: epoch))
            _ = try? await client.run(LeaseScripts.release, keys: [keys.lease, keys.leader, keys.leasePresence], arguments: [leaseValue(epoch), keys.leaderEvents, message])
            logger.info("released the lease", metadata: ["epoch": "\(epoch)"])
            return []
        }
    }

    /// How long a starting controller waits for its presence subscription before its first try.
    static let presenceWait: Duration = .milliseconds(500)

    private func leaseValue(_ epoch: Int64) -> String { "\(identity.id):\(epoch)" }

}

/// Why leadership could not be had or used.
public typealias LeaseError = DomainError<LeaseErrorDomain>

/// The codes of ``LeaseError``.
public enum LeaseErrorDomain {}

extension ErrorCode where Domain == LeaseErrorDomain {
    /// The lease timings do not fit together.
    public static let invalidTiming = Self("invalidTiming")
    /// A fenced write was refused: this controller no longer holds the lease.
    public static let fenced = Self("fenced")
}
