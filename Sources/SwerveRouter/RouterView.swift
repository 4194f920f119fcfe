public import SwerveCore
public import SwerveProtocol

/// What a router knows: the last configs and routing snapshots it accepted, and the routing
/// table built from them.
///
/// Guarantees: notices are only hints, ordered by `(epoch, version)`: one that names nothing
/// newer than what is held is ignored. A snapshot read from its key is the truth and is taken
/// whenever it differs from the held one's `(epoch, version)`: only the leader of the moment
/// writes the keys (fenced), and leaders' epochs only grow, so the key goes back only when
/// Redis lost writes (a failover to a lagging replica, a restore from an older file) — and
/// then holding on to the lost future would refuse every snapshot the new leader writes. The
/// table is rebuilt only when a snapshot is taken.
public struct RouterView: Sendable {
    public private(set) var configs: Snapshot<BackendConfigsView>?
    public private(set) var routing: Snapshot<RoutingView>?
    public private(set) var table = RoutingTable()

    public init() {}

    /// Whether a notice names something newer than what is held (worth a re-read).
    public func isNewer(_ notice: SnapshotNotice) -> Bool {
        switch notice.kind {
        case .configs: return Self.isNewer(notice.epoch, notice.version, than: configs, \.version)
        case .routing: return Self.isNewer(notice.epoch, notice.version, than: routing, \.version)
        }
    }

    /// What a notice asks the router to read.
    public enum Reread: Sendable, Hashable {
        /// The snapshot the notice names: it is the next one of its kind.
        case snapshot(SnapshotNotice.Kind)
        /// Both snapshots: the notice skipped a version or came from another term, so other
        /// notices (of either kind) may have been lost on the way.
        case both
    }

    /// What taking a notice did.
    public enum NoticeEffect: Sendable, Hashable {
        /// It names nothing newer than what is held.
        case ignored
        /// A routing delta that follows the held view: applied in place (the table's changed
        /// backends only), with the tags of the replicas that left the view.
        case applied(left: [String])
        /// Something must be read from Redis.
        case reread(Reread)
    }

    /// Applies a routing notice's delta when it follows the held view (same epoch, its `from`
    /// the held version): O(the backends it changes). Otherwise says what to re-read (see
    /// ``reread(for:)``).
    public mutating func take(_ notice: SnapshotNotice) -> NoticeEffect {
        guard let reread = reread(for: notice) else { return .ignored }
        guard notice.kind == .routing, let delta = notice.delta, delta.version == notice.version,
              let held = routing, held.epoch == notice.epoch, let next = delta.applied(to: held.view) else {
            return .reread(reread)
        }
        routing = Snapshot(epoch: held.epoch, view: next)
        var left: [String] = []
        for (tag, change) in delta.backends {
            table.replaceReplicas(of: tag, with: next.backends[tag] ?? [])
            let readded = Set(change.added.map(\.tag))
            left += change.gone == true ? (held.view.backends[tag] ?? []).map(\.tag) : change.removed.filter { !readded.contains($0) }
        }
        return .applied(left: left.sorted())
    }

    /// Nil for a notice that names nothing newer; the named snapshot when it directly follows
    /// the held one; both snapshots on a gap.
    public func reread(for notice: SnapshotNotice) -> Reread? {
        guard isNewer(notice) else { return nil }
        let held: (epoch: Int64, version: Int)? = switch notice.kind {
        case .configs: configs.map { ($0.epoch, $0.view.version) }
        case .routing: routing.map { ($0.epoch, $0.view.version) }
        }
        guard let held, held.epoch == notice.epoch, held.version + 1 == notice.version else { return .both }
        return .snapshot(notice.kind)
    }

    /// What taking a snapshot read from its key did.
    public enum Acceptance: Sendable, Hashable {
        /// The held snapshot has the same `(epoch, version)`: nothing changed.
        case unchanged
        /// Newer than the held one (or the first): taken.
        case newer
        /// Older than the held one, from `held`: the store lost writes. Taken all the same.
        case wentBack(from: SnapshotPosition)
    }

    /// Where a snapshot stands: its leader's epoch and its version.
    public struct SnapshotPosition: Sendable, Hashable, CustomStringConvertible {
        public var epoch: Int64
        public var version: Int
        public var description: String { "epoch \(epoch) version \(version)" }

        public init(epoch: Int64, version: Int) {
            self.epoch = epoch
            self.version = version
        }
    }

    /// Takes `snapshot`, as read from its key, unless it is the one held (see the type's
    /// guarantees for why an older one is taken too).
    @discardableResult
    public mutating func accept(configs snapshot: Snapshot<BackendConfigsView>) -> Acceptance {
        let acceptance = Self.acceptance(of: snapshot.epoch, snapshot.view.version, held: configs.map { ($0.epoch, $0.view.version) })
        guard acceptance != .unchanged else { return acceptance }
        configs = snapshot
        rebuild()
        return acceptance
    }

    @discardableResult
    public mutating func accept(routing snapshot: Snapshot<RoutingView>) -> Acceptance {
        let acceptance = Self.acceptance(of: snapshot.epoch, snapshot.view.version, held: routing.map { ($0.epoch, $0.view.version) })
        guard acceptance != .unchanged else { return acceptance }
        routing = snapshot
        rebuild()
        return acceptance
    }

    private static func acceptance(of epoch: Int64, _ version: Int, held: (epoch: Int64, version: Int)?) -> Acceptance {
        guard let held else { return .newer }
        if (epoch, version) == (held.epoch, held.version) { return .unchanged }
        return (epoch, version) > (held.epoch, held.version) ? .newer : .wentBack(from: SnapshotPosition(epoch: held.epoch, version: held.version))
    }

    private mutating func rebuild() {
        table = RoutingTable(configs: configs?.view, routing: routing?.view)
    }

    /// Epoch first, then version; nothing held is older than anything.
    private static func isNewer<View>(_ epoch: Int64, _ version: Int, than held: Snapshot<View>?, _ heldVersion: (View) -> Int) -> Bool {
        guard let held else { return true }
        return (epoch, version) > (held.epoch, heldVersion(held.view))
    }
}

/// Routes and replicas: which backend owns a path, and where its running replicas are.
public struct RoutingTable: Sendable, Hashable {
    /// Route prefixes, longest first (ties by prefix), with their backend.
    public private(set) var routes: [(prefix: String, backend: String)] = []
    public private(set) var backends: [String: Backend] = [:]

    /// One routed backend.
    public struct Backend: Sendable, Hashable {
        public var tag: String
        public var routePrefix: String?
        public var maxConcurrentQueries: Int
        public var replicas: [RoutedReplica]
        /// How long nothing may move between the router and a replica carrying a request.
        public var upstreamTimeout: Duration = .seconds(BackendConfig().upstreamTimeoutS)
        /// Whether an idempotent request whose replica was lost goes to another replica.
        public var retryIdempotentRequests = BackendConfig().retryIdempotentRequests
        /// Set for an autoscaled backend: how often this router reports its load.
        public var loadReportInterval: Duration?
    }

    public init() {}

    public init(configs: BackendConfigsView?, routing: RoutingView?) {
        for (tag, config) in configs?.backends ?? [:] {
            var backend = Backend(tag: tag, routePrefix: config.routePrefix, maxConcurrentQueries: max(1, config.maxConcurrentQueries),
                                  replicas: (routing?.backends[tag] ?? []).sorted { $0.tag < $1.tag })
            // A snapshot is read from Redis: a timeout outside the limits (or none, from an older
            // leader) gets the default rather than a timer that never or always fires.
            if let timeout = config.upstreamTimeoutS, Limits.upstreamTimeoutSeconds.contains(timeout) { backend.upstreamTimeout = .seconds(timeout) }
            if let retry = config.retryIdempotentRequests { backend.retryIdempotentRequests = retry }
            if let interval = config.loadReportIntervalS, Limits.metricsIntervalSeconds.contains(interval) { backend.loadReportInterval = .seconds(interval) }
            backends[tag] = backend
            if let prefix = config.routePrefix { routes.append((Self.normalized(prefix), tag)) }
        }
        routes.sort { $0.prefix.count != $1.prefix.count ? $0.prefix.count > $1.prefix.count : $0.prefix < $1.prefix }
    }

    /// Gives `backend` (when it routes: its config is known) these replicas, sorted by tag as
    /// every table holds them.
    mutating func replaceReplicas(of backend: String, with replicas: [RoutedReplica]) {
        guard backends[backend] != nil else { return }
        backends[backend]!.replicas = replicas.sorted { $0.tag < $1.tag }
    }

    /// This table without replica `tag` of `backend` (passive health: it refused a
    /// connection), or nil when there is nothing to remove or it is the backend's last replica
    /// (a router that ejected every replica would fail requests a recovering one could take).
    /// The next snapshot rebuilds the table, so a replica the leader still lists comes back.
    public func ejecting(_ tag: String, from backend: String) -> RoutingTable? {
        guard var routed = backends[backend], routed.replicas.count > 1,
              let index = routed.replicas.firstIndex(where: { $0.tag == tag }) else { return nil }
        routed.replicas.remove(at: index)
        var table = self
        table.backends[backend] = routed
        return table
    }

    /// The backend whose route prefix is the longest one matching `path` on a segment
    /// boundary (`/api` matches `/api`, `/api/x` and `/api?q`, not `/apix`); nil for none.
    public func backend(forPath path: String) -> Backend? {
        let pathOnly = path.prefix { $0 != "?" && $0 != "#" }
        for route in routes where Self.matches(prefix: route.prefix, path: pathOnly) {
            return backends[route.backend]
        }
        return nil
    }

    static func matches(prefix: String, path: Substring) -> Bool {
        if prefix == "/" { return true }
        guard path.hasPrefix(prefix) else { return false }
        return path.count == prefix.count || path[path.index(path.startIndex, offsetBy: prefix.count)] == "/"
    }

    /// `/api/` and `/api` are the same route.
    static func normalized(_ prefix: String) -> String {
        prefix.count > 1 && prefix.hasSuffix("/") ? String(prefix.dropLast()) : prefix
    }

    public static func == (a: RoutingTable, b: RoutingTable) -> Bool {
        a.backends == b.backends && a.routes.map(\.prefix) == b.routes.map(\.prefix) && a.routes.map(\.backend) == b.routes.map(\.backend)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(backends)
    }
}
