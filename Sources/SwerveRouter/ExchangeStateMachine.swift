import NIOHTTP1

/// The life of one proxied request, from its head to its answer, with every retry rule in one
/// place. Pure: events in (a replica chosen, connected, the response head, the connection
/// lost, the client gone…), actions out; ``ProxyHandler`` carries the actions out.
///
/// Retry rules. A request goes to another replica (at most ``maximumResends`` times after it
/// reached one), each time counted with its ``RetryReason``:
/// - when connecting failed: it cannot have reached the replica (not counted as a resend);
/// - when the replica answered `503` with `X-Swerve-Unprocessed` (a draining worker says so
///   before running anything) and no body part was sent; that replica is not tried again;
/// - when the replica's connection was lost before any answer, no body part was sent, the
///   method is idempotent (RFC 9110 §9.2.2: sending it twice has the effect of sending it once)
///   and the backend allows it (`retryIdempotentRequests`). On a fresh connection the replica
///   died with the request: it goes to another replica. On a pooled keep-alive connection the
///   replica may only have closed the idle connection as the request was written (the rule HTTP
///   clients use for stale pooled connections), so the same replica may be chosen again.
///
/// When every replica of the table was tried (each refused the connection or was draining) and
/// the request could still go elsewhere, it waits for the next routing table — a leader
/// replaces dead replicas — and tries the replicas it has not tried, until the backend's queue
/// timeout since it arrived; only then `502`.
///
/// Never once response bytes went to the client, and never once a body part went out (parts
/// are streamed, not kept). A replica that stays silent for the backend's upstream timeout is
/// given up (`504`), not retried: it may still be working on the request.
struct ExchangeStateMachine {
    typealias Choice = ReplicaBalancer.RoutedReplicaChoice

    /// How many times a request that reached a replica may be sent again.
    static let maximumResends = 2

    enum Phase: Equatable {
        /// Waiting for a replica: being admitted, or queued.
        case choosing
        /// Connecting to the chosen replica.
        case connecting(Choice)
        /// The request went (or is going) to the replica; no response head yet. `pooled`: on a
        /// kept-alive connection from the pool, which the replica may have closed.
        case sent(Choice, pooled: Bool)
        /// The response head went to the client.
        case responding(Choice)
        /// Answered, or abandoned: nothing more to do.
        case done
    }

    /// Why the router answers itself.
    enum Failure: Equatable {
        /// The backend has no running replica.
        case noReplicas
        /// Replicas exist, but each refused the connection or was draining (tags in order).
        case unreachable(tried: [String])
        /// Every replica is at its limit and the queue is full.
        case queueFull
        /// Every replica stayed at its limit for the whole queue timeout.
        case queueTimeout
        /// The replica's connection closed before it answered, and the request cannot be repeated.
        case replicaClosed(replica: String)
        /// The replica sent nothing for the backend's upstream timeout.
        case upstreamTimeout(replica: String)
    }

    /// Why a request goes to a replica again (the `reason` of `swerve_router_retries_total`).
    enum RetryReason: String, Equatable, CaseIterable {
        /// Connecting to the replica failed: the request never reached it.
        case connectFailed = "connect_failed"
        /// The replica answered `503` with `X-Swerve-Unprocessed`: it ran nothing.
        case unprocessed
        /// The replica's connection was lost before it answered an idempotent request.
        case connectionLost = "connection_lost"
    }

    enum Action: Equatable {
        /// Nothing to do now.
        case none
        /// Free `release` (close its connection, if any, and its slot), count a retry for
        /// `reason`, then ask the balancer for a replica not in ``tried``.
        case retry(release: Choice, reason: RetryReason)
        /// Connect to the choice (or take a pooled connection to it).
        case connect(Choice)
        /// Send the request head, then these parts that came while connecting.
        case sendRequest(buffered: [HTTPServerRequestPart])
        /// Forward a part of the request to the replica.
        case forward(HTTPServerRequestPart)
        /// Forward the response head to the client.
        case forwardResponseHead
        /// The response ended: free the choice; its connection goes back to the pool when
        /// `reusable` (the replica read the whole request) and the replica keeps it open.
        case finish(Choice, reusable: Bool)
        /// Answer the client with an error; `release`: the choice to free first.
        case fail(Failure, release: Choice?)
        /// Free the choice and close the client's connection: a response cut short must not
        /// look complete.
        case closeClient(release: Choice)
        /// The client left: free the choice, or leave the queue (or stop waiting for a table)
        /// when `dequeue`.
        case abandon(release: Choice?, dequeue: Bool)
        /// Wait for the next routing table (at most until the queue timeout since the request
        /// came), then ask the balancer again for a replica not in ``tried``.
        case awaitTable
    }

    let method: HTTPMethod
    /// Whether the backend lets an idempotent request whose replica was lost go elsewhere.
    let retryIdempotentRequests: Bool
    private(set) var phase = Phase.choosing
    /// Parts that came before the request could be sent.
    private(set) var buffered: [HTTPServerRequestPart] = []
    private(set) var requestEnded = false
    /// Whether a body part went to a replica (it cannot be sent again).
    private(set) var bodySent = false
    /// Replicas this request was sent to or refused by (tags).
    private(set) var tried: Set<String> = []
    private(set) var resends = 0
    /// The last replica whose connection was lost with this request on it.
    private(set) var lost: String?

    /// Whether the request went to a replica's connection (parts that come now are forwarded).
    var requestSent: Bool {
        switch phase {
        case .sent, .responding: true
        case .choosing, .connecting, .done: false
        }
    }

    init(method: HTTPMethod, retryIdempotentRequests: Bool = true) {
        self.method = method
        self.retryIdempotentRequests = retryIdempotentRequests
    }

    // MARK: From the client

    mutating func requestPart(_ part: HTTPServerRequestPart) -> Action {
        if case .end = part { requestEnded = true }
        switch phase {
        case .choosing, .connecting:
            buffered.append(part)
            return .none
        case .sent, .responding:
            if case .body = part { bodySent = true }
            return .forward(part)
        case .done:
            return .none // answered early (404/503): the rest of its body is dropped
        }
    }

    mutating func clientClosed() -> Action {
        let before = phase
        phase = .done
        switch before {
        case .choosing: return .abandon(release: nil, dequeue: true)
        case .connecting(let choice), .sent(let choice, _), .responding(let choice): return .abandon(release: choice, dequeue: false)
        case .done: return .none
        }
    }

    // MARK: From the balancer

    mutating func chosen(_ choice: Choice) -> Action {
        guard phase == .choosing else { return .none }
        tried.insert(choice.tag)
        phase = .connecting(choice)
        return .connect(choice)
    }

    /// The balancer found no replica to try (none running, or every one already tried).
    /// `mayWait`: the queue timeout since the request came has not passed. `autoscaled`: the
    /// backend scales from zero, so a request that found no replica at all waits for one too.
    mutating func noReplicaLeft(mayWait: Bool = false, autoscaled: Bool = false) -> Action {
        guard phase == .choosing else { return .none }
        if mayWait, lost == nil, !tried.isEmpty || autoscaled, !bodySent { return .awaitTable }
        phase = .done
        if let lost { return .fail(.replicaClosed(replica: lost), release: nil) }
        return .fail(tried.isEmpty ? .noReplicas : .unreachable(tried: tried.sorted()), release: nil)
    }

    /// The backend is no longer in the routing table.
    mutating func backendGone() -> Action {
        guard phase == .choosing else { return .none }
        phase = .done
        return .fail(.noReplicas, release: nil)
    }

    mutating func queueFull() -> Action {
        guard phase == .choosing else { return .none }
        phase = .done
        return .fail(.queueFull, release: nil)
    }

    mutating func queueTimedOut() -> Action {
        guard phase == .choosing else { return .none }
        phase = .done
        return .fail(.queueTimeout, release: nil)
    }

    // MARK: From the replica

    mutating func connected(pooled: Bool) -> Action {
        guard case .connecting(let choice) = phase else { return .none }
        phase = .sent(choice, pooled: pooled)
        let parts = buffered
        buffered = []
        if parts.contains(where: { if case .body = $0 { true } else { false } }) { bodySent = true }
        return .sendRequest(buffered: parts)
    }

    /// Connecting failed: nothing was sent, so another replica may take it.
    mutating func connectFailed() -> Action {
        guard case .connecting(let choice) = phase else { return .none }
        phase = .choosing
        return .retry(release: choice, reason: .connectFailed)
    }

    /// `unprocessed`: the replica marked the response `X-Swerve-Unprocessed` (it ran nothing).
    mutating func responseHead(status: HTTPResponseStatus, unprocessed: Bool) -> Action {
        guard case .sent(let choice, _) = phase else { return .none }
        if status == .serviceUnavailable, unprocessed, canResend {
            return resend(choice, sameReplicaAllowed: false, reason: .unprocessed)
        }
        phase = .responding(choice)
        return .forwardResponseHead
    }

    mutating func responseEnded() -> Action {
        guard case .responding(let choice) = phase else { return .none }
        phase = .done
        return .finish(choice, reusable: requestEnded)
    }

    /// The replica's connection closed or failed before the response ended.
    mutating func upstreamLost() -> Action {
        switch phase {
        case .sent(let choice, let pooled):
            if canResend, retryIdempotentRequests, Self.isIdempotent(method) {
                lost = choice.tag
                return resend(choice, sameReplicaAllowed: pooled, reason: .connectionLost)
            }
            phase = .done
            return .fail(.replicaClosed(replica: choice.tag), release: choice)
        case .responding(let choice):
            phase = .done
            return .closeClient(release: choice)
        case .choosing, .connecting, .done:
            return .none
        }
    }

    /// Nothing moved between router and replica for the backend's upstream timeout.
    mutating func upstreamTimedOut() -> Action {
        switch phase {
        case .sent(let choice, _):
            phase = .done
            return .fail(.upstreamTimeout(replica: choice.tag), release: choice)
        case .responding(let choice):
            phase = .done
            return .closeClient(release: choice)
        case .choosing, .connecting, .done:
            return .none
        }
    }

    // MARK: Rules

    /// Nothing of the request but its head went out, and resends are left.
    private var canResend: Bool { !bodySent && resends < Self.maximumResends }

    /// RFC 9110's idempotent methods: repeating one has the effect of sending it once.
    static func isIdempotent(_ method: HTTPMethod) -> Bool {
        switch method {
        case .GET, .HEAD, .OPTIONS, .TRACE, .PUT, .DELETE: true
        default: false
        }
    }

    private mutating func resend(_ choice: Choice, sameReplicaAllowed: Bool, reason: RetryReason) -> Action {
        if sameReplicaAllowed { tried.remove(choice.tag) }
        resends += 1
        buffered = requestEnded ? [.end(nil)] : []
        phase = .choosing
        return .retry(release: choice, reason: reason)
    }
}
