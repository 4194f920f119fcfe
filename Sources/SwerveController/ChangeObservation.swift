import SwerveRedis

/// What one incremental observation took from Redis (the reply of
/// ``FencedCall/takeChanges(count:since:keys:)``), parsed without I/O.
///
/// The leader does not re-read every replica and node each step: workers and node agents add
/// a tag or id to a `changed` set right after writing its key, and the leader takes (`SPOP`)
/// those and re-reads only them, with the nodes whose lease ran out since its last look. An
/// idle step is then O(1) round trips and bytes whatever the fleet's size.
struct ObservedChanges: Sendable, Equatable {
    /// Redis's time (Unix ms) when the changes were taken.
    var redisNow: Int64
    /// Replicas whose ready, drained or exit key changed (distinct).
    var replicas: [String]
    /// Nodes whose record or lease changed (distinct).
    var nodes: [String]
    /// Nodes whose lease ran out since the last observation.
    var lapsed: [String]

    /// Nodes to re-read: changed or lapsed, each once, sorted.
    var touchedNodes: [String] { Array(Set(nodes).union(lapsed)).sorted() }

    /// Parses `{now, replicas, nodes, lapsed}`; nil for anything else.
    init?(_ reply: RedisReply) {
        guard let parts = reply.array, parts.count == 4,
              let now = parts[0].integer,
              let replicas = parts[1].array, let nodes = parts[2].array, let lapsed = parts[3].array else { return nil }
        redisNow = now
        self.replicas = replicas.compactMap(\.string)
        self.nodes = nodes.compactMap(\.string)
        self.lapsed = lapsed.compactMap(\.string)
    }
}

/// When the leader re-reads every replica and node instead of only what changed, as a pure
/// value: at its first step after every load (a takeover, or a step that failed — a lost
/// connection may have lost changes with it), at the first step after the adoption grace ends
/// (what was "no news" during it is judged now), and every ``interval`` as a safety net.
struct FullReadSchedule: Sendable, Equatable {
    /// The safety net's period: long, because a full read costs O(fleet) (3 keys per replica).
    static let interval = Duration.seconds(30)

    private(set) var last: ContinuousClock.Instant?
    /// Whether the last full read happened during an adoption grace.
    private(set) var lastInGrace = false

    func isDue(now: ContinuousClock.Instant, adoption: AdoptionGrace) -> Bool {
        guard let last else { return true }
        if lastInGrace, !adoption.inGrace(now: now) { return true }
        return now - last >= Self.interval
    }

    mutating func read(at now: ContinuousClock.Instant, adoption: AdoptionGrace) {
        last = now
        lastInGrace = adoption.inGrace(now: now)
    }

    /// The state was (re)loaded: the next observation reads everything.
    mutating func reset() {
        last = nil
        lastInGrace = false
    }
}
