/// What changed in the routing view from version `from` to version `version`: per backend,
/// the replicas that left and those that joined. Routers apply it to the view they hold when
/// that view is `from`, so one change costs them O(that backend), not a whole snapshot.
///
/// Guarantees: `RoutingDelta(from: a, to: b).applied(to: a)` is `b` up to the order of
/// replicas (a changed backend's come sorted by tag, the order routers use: compare
/// ``RoutingView/sortedByTag``); applied to any other version it is nil — a router that
/// missed a delta never builds a wrong view, it re-reads.
public struct RoutingDelta: Sendable, Hashable, Codable {
    public var from: Int
    public var version: Int
    /// Only the backends that changed.
    public var backends: [String: BackendChange]

    /// One backend's change.
    public struct BackendChange: Sendable, Hashable, Codable {
        /// Tags of replicas that left the view (or whose address changed: they are in `added` too).
        public var removed: [String]
        /// Replicas that joined the view (or came back with another address).
        public var added: [RoutedReplica]
        /// The backend left the view altogether (it is being deleted).
        public var gone: Bool?

        public init(removed: [String] = [], added: [RoutedReplica] = [], gone: Bool? = nil) {
            self.removed = removed
            self.added = added
            self.gone = gone
        }
    }

    public init(from: Int, version: Int, backends: [String: BackendChange]) {
        self.from = from
        self.version = version
        self.backends = backends
    }

    /// The changes from `old` to `new`. O(the replicas of both views): backends are compared
    /// whole first, and only a changed one is diffed replica by replica.
    public init(from old: RoutingView, to new: RoutingView) {
        from = old.version
        version = new.version
        backends = [:]
        for tag in old.backends.keys where new.backends[tag] == nil {
            backends[tag] = BackendChange(gone: true)
        }
        for (tag, replicas) in new.backends {
            let before = old.backends[tag]
            if before == replicas { continue }
            var held: [String: RoutedReplica] = [:]
            for replica in before ?? [] { held[replica.tag] = replica }
            var change = BackendChange()
            var present = Set<String>()
            for replica in replicas {
                present.insert(replica.tag)
                switch held[replica.tag] {
                case replica?: continue
                case .some: change.removed.append(replica.tag); change.added.append(replica)
                case nil: change.added.append(replica)
                }
            }
            for replica in before ?? [] where !present.contains(replica.tag) { change.removed.append(replica.tag) }
            // A backend new to the view with no replica yet is still a change: it now routes.
            if change.removed.isEmpty, change.added.isEmpty, before != nil { continue }
            change.removed.sort()
            change.added.sort { $0.tag < $1.tag }
            backends[tag] = change
        }
    }

    /// `view` with this change, or nil when `view` is not the version it follows.
    public func applied(to view: RoutingView) -> RoutingView? {
        guard view.version == from, version > from else { return nil }
        var next = view
        next.version = version
        for (tag, change) in backends {
            if change.gone == true {
                next.backends[tag] = nil
                continue
            }
            let removed = Set(change.removed)
            var replicas = (view.backends[tag] ?? []).filter { !removed.contains($0.tag) }
            replicas += change.added
            replicas.sort { $0.tag < $1.tag }
            next.backends[tag] = replicas
        }
        return next
    }

    /// How many replicas it names: what decides whether a delta is worth sending rather than
    /// the whole view.
    public var size: Int { backends.values.reduce(0) { $0 + 1 + $1.removed.count + $1.added.count } }
}

extension RoutingView {
    /// This view with each backend's replicas sorted by tag: how routers hold it, and what a
    /// chain of deltas builds.
    public var sortedByTag: RoutingView {
        var view = self
        for (tag, replicas) in backends { view.backends[tag] = replicas.sorted { $0.tag < $1.tag } }
        return view
    }

    /// How many replicas it lists.
    public var size: Int { backends.values.reduce(0) { $0 + 1 + $1.count } }
}
