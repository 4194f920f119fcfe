import SwerveCore
import SwerveProtocol

/// What the leader knows of every node between two full re-reads, as a pure value: each node's
/// record and lease (its score in the `nodes` set), and Redis's clock at the last observation.
///
/// Guarantees:
/// - a node is alive when, as last read, it had a record (readable or not) and a lease running
///   out after Redis's time of that read. Heartbeats push leases forward without telling the
///   leader, so a lease read earlier is stale by design: liveness is decided when a node is
///   read and kept until it is read again — which happens whenever it joins, changes, leaves,
///   or its lease runs out (``ObservedChanges``);
/// - ``nodeInfos(cordons:adoption:now:)`` is what the reconciler's `Observations.nodes` must
///   hold: every node listed, with an adopted node's missing record or lease treated as no news
///   during the adoption grace (see ``AdoptionGrace``); it is recomputed only when a sighting,
///   the cordons or the grace changed, so an idle step does not rebuild it.
struct NodeLeases: Sendable {
    /// One node as last read.
    struct Sighting: Sendable, Equatable {
        /// Its record, nil when missing or unreadable.
        var record: NodeRecord?
        /// A record exists that this leader cannot read (a newer agent?): alive, not schedulable.
        var unreadable = false
        /// When its lease runs out (Unix ms, Redis's clock) as read; nil when not in `nodes`.
        var deadline: Int64?
        /// Whether it was alive when read (set by ``NodeLeases``).
        fileprivate(set) var alive = false

        init(record: NodeRecord? = nil, unreadable: Bool = false, deadline: Int64? = nil) {
            self.record = record
            self.unreadable = unreadable
            self.deadline = deadline
        }

        /// As read at `redisNow`.
        fileprivate func judged(at redisNow: Int64) -> Sighting {
            var judged = self
            judged.alive = (record != nil || unreadable) && (deadline ?? .min) > redisNow
            return judged
        }
    }

    private(set) var sightings: [String: Sighting] = [:]
    /// Redis's time (ms) at the last observation; nil before the first.
    private(set) var redisNow: Int64?
    private var cached: (infos: [String: NodeInfo], cordons: [String: NodeCordonDocument.Mode], inGrace: Bool)?

    /// A full re-read: `sightings` are every node there is.
    mutating func replaceAll(_ sightings: [String: Sighting], redisNow: Int64) {
        self.sightings = sightings.mapValues { $0.judged(at: redisNow) }
        self.redisNow = redisNow
        cached = nil
    }

    /// An incremental read at `redisNow`: `updated` are the nodes re-read (their current truth;
    /// a node with neither record nor lease is forgotten).
    mutating func update(_ updated: [String: Sighting], redisNow: Int64) {
        self.redisNow = redisNow
        guard !updated.isEmpty else { return }
        for (id, sighting) in updated {
            sightings[id] = sighting.record == nil && !sighting.unreadable && sighting.deadline == nil ? nil : sighting.judged(at: redisNow)
        }
        cached = nil
    }


    /// Every node as the reconciler must see it.
    mutating func nodeInfos(cordons: [String: NodeCordonDocument.Mode], adoption: AdoptionGrace, now: ContinuousClock.Instant) -> [String: NodeInfo] {
        let inGrace = !adoption.nodesInGrace(now: now).isEmpty
        if let cached, cached.cordons == cordons, !cached.inGrace, !inGrace { return cached.infos }
        var infos: [String: NodeInfo] = [:]
        infos.reserveCapacity(sightings.count)
        for (id, sighting) in sightings {
            guard sighting.alive else {
                infos[id] = adoption.filter(node: id, nil, now: now) // missing: no news during the grace, then gone
                continue
            }
            guard let record = sighting.record else {
                // Present but unreadable (a newer agent?): the agent is alive, its record says so.
                infos[id] = NodeInfo(id: id, total: .zero, alive: true, schedulable: false)
                continue
            }
            infos[id] = NodeInfo(id: id, total: record.resources, alive: true, schedulable: cordons[id] == nil,
                                 draining: record.draining == true || cordons[id] == .drain)
        }
        // Known alive at the load, not listed now: no news during the grace (see AdoptionGrace).
        for id in adoption.nodesInGrace(now: now) where infos[id] == nil {
            infos[id] = adoption.filter(node: id, nil, now: now)
        }
        cached = (infos, cordons, inGrace)
        return infos
    }
}
