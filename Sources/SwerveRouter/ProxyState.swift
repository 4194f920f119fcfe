import NIOCore
import SwerveCore
import SwerveHTTP
import SwerveProtocol
import Synchronization

/// How the proxy behaves under load, and what it allows its clients. Each value is a flag of
/// `swerve router` and an environment variable (docs/PROTOCOL.md, "Router limits").
public struct ProxySettings: Sendable {
    /// Requests that may wait per backend when every replica is full.
    public var queueLimit: Int
    /// How long a request may wait in the queue before it is answered 503.
    public var queueTimeout: Duration
    /// Connecting to a replica; a failed connect is retried on another replica.
    public var connectTimeout: Duration
    /// Idle keep-alive connections kept per replica and event loop.
    public var idleConnectionsPerReplica: Int
    /// A kept-alive client connection with no request for this long is closed.
    public var clientIdleTimeout: Duration
    /// A request head must arrive in full this long after its first byte (or after the
    /// connection opened): `408` otherwise.
    public var clientHeaderTimeout: Duration
    /// Client connections open at once; one more is answered `503` and closed.
    public var maxConnections: Int
    /// Bytes of a request head (request line and fields); `431` beyond.
    public var maxHeadBytes: Int
    /// Fields in a request head; `431` beyond.
    public var maxHeaderFields: Int

    public init(queueLimit: Int = 100, queueTimeout: Duration = .seconds(5), connectTimeout: Duration = .seconds(1), idleConnectionsPerReplica: Int = 32,
                clientIdleTimeout: Duration = .seconds(60), clientHeaderTimeout: Duration = .seconds(10), maxConnections: Int = 10_000,
                maxHeadBytes: Int = 64 * 1024, maxHeaderFields: Int = 100) {
        self.queueLimit = queueLimit
        self.queueTimeout = queueTimeout
        self.connectTimeout = connectTimeout
        self.idleConnectionsPerReplica = idleConnectionsPerReplica
        self.clientIdleTimeout = clientIdleTimeout
        self.clientHeaderTimeout = clientHeaderTimeout
        self.maxConnections = maxConnections
        self.maxHeadBytes = maxHeadBytes
        self.maxHeaderFields = maxHeaderFields
    }
}

/// What every connection of a router shares: the view, the balancer with its waiting
/// requests, the idle upstream connections, the settings and the metrics. Each piece is
/// behind its own lock; no lock is held while doing I/O.
final class ProxyState: Sendable {
    let settings: ProxySettings
    let metrics: RouterMetrics
    private let view = Mutex(RouterView())
    private let balancing = Mutex(Balancing())
    private let idle = Mutex<[PoolKey: [any Channel]]>([:])
    private let ids = Atomic<UInt64>(0)
    private let active = Atomic<Int>(0)
    private let connections = Atomic<Int>(0)

    /// Requests being proxied (routed, not yet answered in full).
    var activeRequests: Int { active.load(ordering: .relaxed) }

    /// Counts a client connection in; false when it is over ``ProxySettings/maxConnections``
    /// (it is counted all the same, until ``connectionClosed()``).
    func connectionOpened() -> Bool {
        let open = connections.wrappingAdd(1, ordering: .relaxed).newValue
        metrics.clientConnections(open)
        return open <= settings.maxConnections
    }

    func connectionClosed() {
        metrics.clientConnections(connections.wrappingSubtract(1, ordering: .relaxed).newValue)
    }

    func requestStarted() { active.add(1, ordering: .relaxed) }
    func requestEnded() { active.subtract(1, ordering: .relaxed) }

    /// Counts a response whose last part is on its way to the client as in flight until
    /// ``responseWritten()``: a router draining for SIGTERM exits once nothing is in flight,
    /// and must not exit between a response's end being handed to its channel and its bytes
    /// reaching the socket (they would be lost with the process).
    func responseWriting() { active.add(1, ordering: .relaxed) }
    func responseWritten() { active.subtract(1, ordering: .relaxed) }

    /// A request waiting for a replica, completed (on its own event loop) with the replica,
    /// or nil when it must give up.
    struct Waiter: Sendable {
        var backend: String
        var promise: EventLoopPromise<ReplicaBalancer.RoutedReplicaChoice?>
    }

    private struct Balancing: Sendable {
        var balancer = ReplicaBalancer()
        /// Seeded once from the system: `SystemRandomNumberGenerator` costs a `getrandom`
        /// system call per draw, one per request; choosing between replicas needs no more than
        /// a fast, unpredictable-enough sequence.
        var random = SeededRandom(seed: UInt64.random(in: 0...UInt64.max))
        var waiters: [UInt64: Waiter] = [:]
    }

    private struct PoolKey: Hashable, Sendable {
        var loop: ObjectIdentifier
        var address: HostPort
    }

    /// How connections to replicas are set up (`TCP_NODELAY`; failures logged and counted).
    let upstreamSetup: ConnectionSetup

    init(settings: ProxySettings, metrics: RouterMetrics, upstreamSetup: ConnectionSetup) {
        self.settings = settings
        self.metrics = metrics
        self.upstreamSetup = upstreamSetup
        (demands, demandNoticed) = AsyncStream.makeStream(of: String.self, bufferingPolicy: .bufferingNewest(64))
    }

    // MARK: Load (autoscaling)

    /// Backends (tags) for which a request waits with no replica to go to: what the
    /// ``LoadReporter`` reports at once, not at its next interval.
    let demands: AsyncStream<String>
    private let demandNoticed: AsyncStream<String>.Continuation

    /// Per autoscaled backend of the table: requests in flight on the replicas it lists,
    /// queued, and waiting for a replica to appear — read from the balancer's counts, so the
    /// request path keeps nothing extra for it. O(autoscaled replicas).
    func load() -> [String: Int] {
        let backends = table.backends.values.filter { $0.loadReportInterval != nil }
        guard !backends.isEmpty else { return [:] }
        let waiting = tableWaiters.withLock { $0.perBackend }
        return balancing.withLock { state in
            var load: [String: Int] = [:]
            for backend in backends {
                let inFlight = backend.replicas.reduce(0) { $0 + (state.balancer.inFlight[$1.tag] ?? 0) }
                load[backend.tag] = inFlight + state.balancer.queueLength(backend.tag) + (waiting[backend.tag] ?? 0)
            }
            return load
        }
    }

    // MARK: The view

    var currentView: RouterView { view.withLock { $0 } }

    /// The routing table, read on every request: one lock and one retain.
    var table: RoutingTable { tableBox.withLock { $0.table } }
    private let tableBox = Mutex(TableBox(table: RoutingTable()))

    /// Shares one table between readers without copying its dictionaries.
    private final class TableBox: Sendable {
        let table: RoutingTable
        init(table: RoutingTable) { self.table = table }
    }

    /// Requests waiting for the next table (every replica tried, or an autoscaled backend at
    /// zero), by id, and how many per backend.
    private struct TableWaiters {
        var byID: [UInt64: (backend: String, promise: EventLoopPromise<Void>)] = [:]
        var perBackend: [String: Int] = [:]

        mutating func remove(_ id: UInt64) -> EventLoopPromise<Void>? {
            guard let (backend, promise) = byID.removeValue(forKey: id) else { return nil }
            if let count = perBackend[backend] { perBackend[backend] = count > 1 ? count - 1 : nil }
            return promise
        }
    }
    private let tableWaiters = Mutex(TableWaiters())

    /// Succeeds `promise` when the next snapshot is taken (see ``stopAwaitingTable(_:)``);
    /// false, and nothing kept, when ``ProxySettings/queueLimit`` requests of `backend` wait
    /// already. For an autoscaled backend with no replica, the demand is reported at once —
    /// by the first request that waits, not by each (a burst makes one report).
    func awaitTable(_ id: UInt64, backend: String, promise: EventLoopPromise<Void>) -> Bool {
        let waiting = tableWaiters.withLock { waiters -> Int? in
            guard waiters.perBackend[backend, default: 0] < settings.queueLimit else { return nil }
            waiters.byID[id] = (backend, promise)
            waiters.perBackend[backend, default: 0] += 1
            return waiters.perBackend[backend]
        }
        if waiting == 1, let routed = table.backends[backend], routed.loadReportInterval != nil, routed.replicas.isEmpty { demandNoticed.yield(backend) }
        return waiting != nil
    }

    /// Stops waiting for request `id`: its promise, for the caller to complete, if it still waited.
    func stopAwaitingTable(_ id: UInt64) -> EventLoopPromise<Void>? {
        tableWaiters.withLock { $0.remove(id) }
    }

    /// Changes the view; waiting requests that can go now (new replicas) are sent.
    @discardableResult
    func updateView(_ change: (inout RouterView) -> RouterView.Acceptance) -> RouterView.Acceptance {
        let (acceptance, updated) = view.withLock { view in (change(&view), view) }
        guard acceptance != .unchanged else { return acceptance }
        metrics.viewChanged(updated)
        publish(updated.table)
        return acceptance
    }

    /// Takes a notice (see ``RouterView/take(_:)``): a routing delta that follows the held view
    /// is applied here, at the cost of the backends it changes.
    func take(_ notice: SnapshotNotice) -> RouterView.NoticeEffect {
        let (effect, updated) = view.withLock { view in (view.take(notice), view) }
        guard case .applied(let left) = effect else { return effect }
        metrics.deltaApplied(updated, left: left)
        publish(updated.table)
        return effect
    }

    /// Makes `table` the one requests read, and hands waiting requests its replicas.
    private func publish(_ table: RoutingTable) {
        tableBox.withLock { $0 = TableBox(table: table) }
        for backend in table.backends.values { releaseWaiters(of: backend) }
        let waiting = tableWaiters.withLock { waiters in
            defer { waiters = TableWaiters() }
            return waiters.byID.values.map(\.promise)
        }
        for promise in waiting { promise.succeed(()) }
    }

    /// Takes a replica that refused a connection out of this router's table until the next
    /// snapshot (passive health, like Envoy's outlier detection): other requests stop trying it
    /// at once instead of each paying for a refused connect. True when it was ejected.
    @discardableResult
    func eject(_ tag: String, backend: String) -> Bool {
        let ejected = tableBox.withLock { box -> Bool in
            guard let table = box.table.ejecting(tag, from: backend) else { return false }
            box = TableBox(table: table)
            return true
        }
        if ejected { metrics.ejected(backend: backend) }
        return ejected
    }

    // MARK: Balancing

    func nextRequestID() -> UInt64 { ids.add(1, ordering: .relaxed).newValue }

    /// A request id for `X-Request-Id` when the client sent none: this router's random
    /// prefix and the request's sequence number, unique across routers and restarts.
    func requestID(_ id: UInt64) -> String { instance + String(id, radix: 16) }
    private let instance = String(UInt64.random(in: 0...UInt64.max), radix: 16) + "-"


    /// Admits a request: a replica now, or (when full) a place in the queue whose promise the
    /// caller waits on. `waiter` is made only when the request is queued: a request that gets a
    /// replica at once (nearly all) creates no promise.
    func admit(_ id: UInt64, to backend: RoutingTable.Backend, excluding: Set<String>, waiter: () -> Waiter) -> ReplicaBalancer.Decision {
        let decision = balancing.withLock { state in
            let decision = state.balancer.admit(id, to: backend, queueLimit: settings.queueLimit, excluding: excluding, random: &state.random)
            if case .queued = decision { state.waiters[id] = waiter() }
            return decision
        }
        if case .send(let choice) = decision { metrics.inFlightChanged(choice.tag, by: 1) }
        return decision
    }

    /// A request on `tag` of `backend` ended; the next waiting one may go.
    func finished(_ tag: String, backend: String) {
        metrics.inFlightChanged(tag, by: -1)
        let current = table.backends[backend]
        let next = balancing.withLock { state -> (Waiter, ReplicaBalancer.RoutedReplicaChoice)? in
            guard let (id, choice) = state.balancer.finished(tag, backend: current, random: &state.random),
                  let waiter = state.waiters.removeValue(forKey: id) else { return nil }
            return (waiter, choice)
        }
        if let (waiter, choice) = next {
            metrics.inFlightChanged(choice.tag, by: 1)
            waiter.promise.succeed(choice)
            metrics.queueLength(backend, queueLength(backend))
        }
    }

    /// Gives up waiting (timeout, or the client left): true if it was still queued.
    func abandon(_ id: UInt64, backend: String) -> Bool {
        let removed = balancing.withLock { state -> Bool in
            guard state.balancer.abandon(id, backend: backend) else { return false }
            state.waiters[id] = nil
            return true
        }
        metrics.queueLength(backend, queueLength(backend))
        return removed
    }

    func queueLength(_ backend: String) -> Int { balancing.withLock { $0.balancer.queueLength(backend) } }

    private func releaseWaiters(of backend: RoutingTable.Backend) {
        while true {
            let next = balancing.withLock { state -> (Waiter, ReplicaBalancer.RoutedReplicaChoice)? in
                guard let (id, choice) = state.balancer.dequeue(backend, random: &state.random),
                      let waiter = state.waiters.removeValue(forKey: id) else { return nil }
                return (waiter, choice)
            }
            guard let (waiter, choice) = next else { return }
            metrics.inFlightChanged(choice.tag, by: 1)
            waiter.promise.succeed(choice)
        }
    }

    // MARK: Idle upstream connections

    /// An idle, still open connection to `address` on `loop`, if there is one.
    func takeIdle(_ address: HostPort, on loop: any EventLoop) -> (any Channel)? {
        let key = PoolKey(loop: ObjectIdentifier(loop), address: address)
        return idle.withLock { idle in
            while var channels = idle[key], let channel = channels.popLast() {
                idle[key] = channels.isEmpty ? nil : channels
                if channel.isActive { return channel }
            }
            return nil
        }
    }

    /// Keeps `channel` for reuse; false (the caller closes it) when the pool is full.
    func giveIdle(_ channel: any Channel, address: HostPort, on loop: any EventLoop) -> Bool {
        let key = PoolKey(loop: ObjectIdentifier(loop), address: address)
        return idle.withLock { idle in
            guard (idle[key]?.count ?? 0) < settings.idleConnectionsPerReplica else { return false }
            idle[key, default: []].append(channel)
            return true
        }
    }
}
