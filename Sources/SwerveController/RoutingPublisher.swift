import SwerveCore

/// How each routing view goes out: as a delta from the last one published (small: what
/// changed), or as a whole snapshot. Pure; ``ControllerTerm`` keeps one per load.
///
/// Guarantees: the first view after a load goes out whole (what is stored is not known); after
/// that, a view goes out as a delta unless the deltas since the last whole snapshot would
/// outweigh it (counted in replicas) or number ``maximumDeltas``: so a router healing a gap
/// reads at most about twice the view, and the list of deltas stays short.
struct RoutingPublisher {
    /// What routers are sent for one view.
    enum Publication: Equatable {
        case whole(RoutingView)
        case delta(RoutingDelta)
    }

    /// At most this many deltas follow a whole view (1,000 unless a test says otherwise).
    let maximumDeltas: Int

    private var published: RoutingView?
    /// The size (``RoutingView/size``) of the last whole snapshot, and of the deltas since.
    private var wholeSize = 0
    private var deltaSize = 0
    private var deltas = 0

    init(maximumDeltas: Int = 1_000) {
        self.maximumDeltas = maximumDeltas
    }

    mutating func publish(_ view: RoutingView) -> Publication {
        defer { published = view }
        if let published, view.version > published.version {
            let delta = RoutingDelta(from: published, to: view)
            if deltaSize + delta.size <= wholeSize, deltas < maximumDeltas {
                deltaSize += delta.size
                deltas += 1
                return .delta(delta)
            }
        }
        wholeSize = view.size
        deltaSize = 0
        deltas = 0
        return .whole(view)
    }
}
