/// What the stored checkpoint holds, part by part, so that writing the next one sends only the
/// parts that differ: a change to one replica writes that replica's part and the header, not
/// the whole state (see ``Checkpoint`` for the stored form).
///
/// Guarantees: applying a ``CheckpointWrite`` to the parts this ledger describes yields parts
/// that load as exactly the state written — the same records, with order keys (`seq`) that
/// give every list of replicas back in its order (the keys themselves may differ from those
/// of a fresh ``Checkpoint/encode(_:)``). A ledger that does not know
/// what is stored (a new one, or one after a version 1 checkpoint) asks its first write to
/// replace every part. It is correct only while each write it returns is stored: when one
/// may have failed, the caller loads the checkpoint again (and with it a new ledger).
public struct CheckpointLedger: Sendable {
    /// One replica's part as stored.
    struct StoredReplica: Sendable {
        var record: ReplicaRecord
        var retired: Bool
        /// Its order key: replicas of one list are stored in increasing `seq`.
        var seq: Int
        /// The write that last saw it in the state (how removed replicas are found).
        var mark: Int
    }

    /// False until a write replaced every part: what is stored is then unknown.
    private var known = false
    /// Backends as stored: their records without replicas.
    private var backends: [String: BackendRecord] = [:]
    private var replicas: [String: StoredReplica] = [:]
    private var liveNodes: [String] = []
    private var goalOutcomes: [GoalOutcome] = []
    private var nextSeq = 0
    private var writes = 0
    /// The replicas whose user config the step that wrote the stored checkpoint pushed (its
    /// header lists them): a new leader pushes these again, in case the old one died before
    /// it did. Nil when not known (a version 1 checkpoint, or none yet): then every RUNNING
    /// replica's.
    public private(set) var pendingUserConfigs: Set<String>?

    /// A ledger that knows nothing stored: its first write replaces every part.
    public init() {}

    /// The ledger of a checkpoint just loaded, part for part.
    init(backends: [BackendRecord], replicas: [String: StoredReplica], liveNodes: [String], goalOutcomes: [GoalOutcome], pendingUserConfigs: Set<String>?) {
        known = true
        self.pendingUserConfigs = pendingUserConfigs
        for backend in backends {
            var head = backend
            head.replicas = []
            self.backends[backend.tag] = head
        }
        self.replicas = replicas
        self.liveNodes = liveNodes
        self.goalOutcomes = goalOutcomes
        nextSeq = (replicas.values.map(\.seq).max() ?? -1) + 1
    }

    /// The write that stores `state`, given what this ledger says is stored; the ledger then
    /// describes `state`. `pushing`: the replicas whose user config the step writing it pushes
    /// after it (recorded in the header; see ``pendingUserConfigs``).
    public mutating func write(_ state: BackendState, pushing: [String] = []) -> CheckpointWrite {
        let replacesAll = !known
        if replacesAll {
            backends = [:]
            replicas = [:]
            liveNodes = []
            goalOutcomes = []
        }
        writes += 1
        var parts: [CheckpointWrite.Part] = []
        var removed: [String] = []
        for backend in state.backends {
            var head = backend
            head.replicas = []
            if backends[backend.tag] != head {
                backends[backend.tag] = head
                parts.append(.init(field: Checkpoint.backendField(backend.tag), value: Checkpoint.encodePart(backend: head)))
            }
            visit(backend.replicas, retired: false, into: &parts)
        }
        visit(state.retiredReplicas, retired: true, into: &parts)
        if backends.count != state.backends.count {
            let present = Set(state.backends.map(\.tag))
            for tag in backends.keys.sorted() where !present.contains(tag) {
                backends[tag] = nil
                removed.append(Checkpoint.backendField(tag))
            }
        }
        let listed = state.backends.reduce(state.retiredReplicas.count) { $0 + $1.replicas.count }
        if replicas.count != listed {
            var forgotten: [String] = []
            for (tag, stored) in replicas where stored.mark != writes { forgotten.append(tag) }
            for tag in forgotten {
                replicas[tag] = nil
                removed.append(Checkpoint.replicaField(tag))
            }
        }
        if replacesAll || liveNodes != state.liveNodes {
            liveNodes = state.liveNodes
            parts.append(.init(field: Checkpoint.liveNodesField, value: Checkpoint.encodePart(liveNodes: state.liveNodes)))
        }
        if replacesAll || goalOutcomes != state.recentGoalOutcomes {
            goalOutcomes = state.recentGoalOutcomes
            parts.append(.init(field: Checkpoint.goalOutcomesField, value: Checkpoint.encodePart(goalOutcomes: state.recentGoalOutcomes)))
        }
        known = true
        pendingUserConfigs = Set(pushing)
        return CheckpointWrite(header: Checkpoint.encodeHeader(state, backends: state.backends.count, replicas: listed, pushing: pushing.sorted()),
                               replacesAll: replacesAll, removed: removed.sorted(), parts: parts)
    }

    /// Compares each replica of one list with its stored part; a replica stored out of this
    /// list's order (or in the other list) gets a new order key.
    private mutating func visit(_ list: [ReplicaRecord], retired: Bool, into parts: inout [CheckpointWrite.Part]) {
        var last = -1
        for r in list.indices {
            let tag = list[r].tag
            if let index = replicas.index(forKey: tag) {
                let stored = replicas.values[index]
                let seq = stored.seq > last && stored.retired == retired ? stored.seq : nextOrderKey()
                if seq != stored.seq || stored.retired != retired || stored.record != list[r] {
                    replicas.values[index] = StoredReplica(record: list[r], retired: retired, seq: seq, mark: writes)
                    parts.append(.init(field: Checkpoint.replicaField(tag), value: Checkpoint.encodePart(replica: list[r], retired: retired, seq: seq)))
                } else {
                    replicas.values[index].mark = writes
                }
                last = seq
            } else {
                let seq = nextOrderKey()
                replicas[tag] = StoredReplica(record: list[r], retired: retired, seq: seq, mark: writes)
                parts.append(.init(field: Checkpoint.replicaField(tag), value: Checkpoint.encodePart(replica: list[r], retired: retired, seq: seq)))
                last = seq
            }
        }
    }

    private mutating func nextOrderKey() -> Int {
        defer { nextSeq += 1 }
        return nextSeq
    }
}

/// One checkpoint write: the header, and the parts that changed since the stored checkpoint.
/// Stored in one fenced script call (see the controller's `writeCheckpoint`), so Redis always
/// holds a whole checkpoint, never half of one.
public struct CheckpointWrite: Sendable, Hashable {
    /// One hash field of the parts and its new value.
    public struct Part: Sendable, Hashable {
        public var field: String
        public var value: [UInt8]
    }

    /// The `checkpoint` key's new value.
    public var header: [UInt8]
    /// Every stored part goes first (what is stored was unknown or of an older version).
    public var replacesAll: Bool
    /// Parts to delete (forgotten backends and replicas), sorted.
    public var removed: [String]
    /// Parts to set, in state order.
    public var parts: [Part]

    /// What the write sends, in bytes (header, fields and values).
    public var byteCount: Int {
        parts.reduce(header.count + removed.reduce(0) { $0 + $1.utf8.count }) { $0 + $1.field.utf8.count + $1.value.count }
    }
}

extension Checkpoint.Stored {
    /// What Redis holds after `write` is stored over `stored` (nil: nothing stored): what the
    /// leader's `writeCheckpoint` script does, for tests.
    static func applying(_ write: CheckpointWrite, to stored: Self?) -> Self {
        var parts = write.replacesAll ? [:] : stored?.parts ?? [:]
        for field in write.removed { parts[field] = nil }
        for part in write.parts { parts[part.field] = part.value }
        return Self(header: write.header, parts: parts)
    }
}
