import Dispatch
import FoundationEssentials
import Synchronization
public import SwerveErrors

/// The checkpoint: the whole ``BackendState``, stored in parts so that a change rewrites only
/// what it changed.
///
/// Stored form (schema version 2): a header — `{"schemaVersion":2,"state":{…scalars…},
/// "parts":{"backends":B,"replicas":R}}` — and a hash of parts: `backend:<tag>` (the record
/// without its replicas), `replica:<tag>` (`{"replica":{…},"retired":false,"seq":N}`, `seq`
/// ordering each list of replicas), `nodes` (the live nodes) and `goals` (the recent goal
/// outcomes). ``CheckpointLedger`` works out
/// which parts a new state changes. Version 1 — the whole state in one document — still loads;
/// the first write after it replaces it with parts.
///
/// Encoding is deterministic (sorted keys), so the same state always gives the same parts.
/// Decoding refuses an unknown schema version and any corrupted, incomplete or inconsistent
/// checkpoint with an error that names the problem (and the part): it never yields an empty
/// or partial state that could overwrite the real one.
public enum Checkpoint {
    public static let schemaVersion = 2

    /// A checkpoint as Redis holds it: the header (the `checkpoint` key) and the parts (the
    /// `checkpoint:parts` hash; none for version 1).
    public struct Stored: Sendable, Hashable {
        public var header: [UInt8]
        public var parts: [String: [UInt8]]

        public init(header: [UInt8], parts: [String: [UInt8]] = [:]) {
            self.header = header
            self.parts = parts
        }
    }

    static let backendFieldPrefix = "backend:"
    static let replicaFieldPrefix = "replica:"
    static let liveNodesField = "nodes"
    static let goalOutcomesField = "goals"
    static func backendField(_ tag: String) -> String { backendFieldPrefix + tag }
    static func replicaField(_ tag: String) -> String { replicaFieldPrefix + tag }

    /// Every part of `state`, as a first write stores it.
    public static func encode(_ state: BackendState) -> Stored {
        var ledger = CheckpointLedger()
        let write = ledger.write(state)
        return Stored(header: write.header, parts: Dictionary(write.parts.map { ($0.field, $0.value) }, uniquingKeysWith: { _, last in last }))
    }

    public static func decode(_ stored: Stored) throws(CheckpointError) -> BackendState {
        try load(stored).state
    }

    /// The state, and the ledger of what is stored (for writing only what changes next).
    public static func load(_ stored: Stored) throws(CheckpointError) -> (state: BackendState, ledger: CheckpointLedger) {
        if JSONNesting.exceeds(stored.header) {
            throw CheckpointError(.corrupted, "the checkpoint's header nests deeper than \(Limits.jsonNesting) levels")
        }
        for (field, value) in stored.parts where JSONNesting.exceeds(value) {
            throw CheckpointError(.corrupted, "the checkpoint's part \(field) nests deeper than \(Limits.jsonNesting) levels")
        }
        let decoder = JSONDecoder()
        let version: Int
        do {
            version = try decoder.decode(VersionOnly.self, from: Data(stored.header)).schemaVersion
        } catch {
            throw CheckpointError(.corrupted, "the checkpoint is not a versioned Swerve checkpoint: \(describe(error))")
        }
        let state: BackendState
        let ledger: CheckpointLedger
        switch version {
        case 1:
            guard stored.parts.isEmpty else { throw CheckpointError(.corrupted, "the checkpoint is of version 1 but has parts") }
            do {
                state = try decoder.decode(Envelope.self, from: Data(stored.header)).state
            } catch {
                throw CheckpointError(.corrupted, "the checkpoint is corrupted: \(describe(error))")
            }
            ledger = CheckpointLedger()
        case schemaVersion:
            (state, ledger) = try assemble(stored, decoder: decoder)
        default:
            throw CheckpointError(.unknownVersion, "the checkpoint has schema version \(version), but this Swerve reads only versions 1 and \(schemaVersion): upgrade this controller, or stop the newer one that wrote it")
        }
        if let problem = consistencyProblem(state) {
            throw CheckpointError(.corrupted, "the checkpoint is inconsistent: \(problem)")
        }
        return (state, ledger)
    }

    /// A version 2 checkpoint's state from its header and parts.
    private static func assemble(_ stored: Stored, decoder: JSONDecoder) throws(CheckpointError) -> (BackendState, CheckpointLedger) {
        let header: Header
        do {
            header = try decoder.decode(Header.self, from: Data(stored.header))
        } catch {
            throw CheckpointError(.corrupted, "the checkpoint's header is corrupted: \(describe(error))")
        }
        var backends: [String: BackendRecord] = [:]
        var replicaFields: [String] = []
        var liveNodes: [String]?
        var goalOutcomes: [GoalOutcome]?
        var replicaValues: [[UInt8]] = []
        // In the hash's order: nothing depends on it (replicas are ordered by their keys), and
        // sorting 100,000 fields would cost a takeover a tenth of a second.
        for (field, value) in stored.parts {
            do {
                if field == liveNodesField {
                    liveNodes = try decoder.decode([String].self, from: Data(value))
                } else if field == goalOutcomesField {
                    goalOutcomes = try decoder.decode([GoalOutcome].self, from: Data(value))
                } else if field.hasPrefix(backendFieldPrefix) {
                    let backend = try decoder.decode(BackendRecord.self, from: Data(value))
                    guard backend.tag == field.dropFirst(backendFieldPrefix.count), backend.replicas.isEmpty else {
                        throw CheckpointError(.corrupted, "the checkpoint's part \(field) holds backend \(backend.tag) with \(backend.replicas.count) replicas")
                    }
                    backends[backend.tag] = backend
                } else if field.hasPrefix(replicaFieldPrefix) {
                    replicaValues.append(value)
                    replicaFields.append(field)
                } else {
                    throw CheckpointError(.corrupted, "the checkpoint has a part no Swerve writes: \(field)")
                }
            } catch let error as CheckpointError {
                throw error
            } catch {
                throw CheckpointError(.corrupted, "the checkpoint's part \(field) is corrupted: \(describe(error))")
            }
        }
        let parts = try decodeReplicaParts(replicaValues, fields: replicaFields)
        guard parts.count == replicaFields.count else {
            throw CheckpointError(.corrupted, "the checkpoint's replica parts hold \(parts.count) records in \(replicaFields.count) fields")
        }
        guard let liveNodes else { throw CheckpointError(.corrupted, "the checkpoint has no part \(liveNodesField)") }
        guard let goalOutcomes else { throw CheckpointError(.corrupted, "the checkpoint has no part \(goalOutcomesField)") }
        guard backends.count == header.parts.backends, parts.count == header.parts.replicas else {
            throw CheckpointError(.corrupted, "the checkpoint's header counts \(header.parts.backends) backends and \(header.parts.replicas) replicas, but its parts hold \(backends.count) and \(parts.count): parts are missing or left over")
        }
        var stored: [String: CheckpointLedger.StoredReplica] = [:]
        stored.reserveCapacity(parts.count)
        var lists: [String: [ReplicaPart]] = [:]
        var retired: [ReplicaPart] = []
        var seqs = Set<Int>()
        for (field, part) in zip(replicaFields, parts) {
            guard part.replica.tag == field.dropFirst(replicaFieldPrefix.count) else {
                throw CheckpointError(.corrupted, "the checkpoint's part \(field) holds replica \(part.replica.tag)")
            }
            guard (0..<(1 << 53)).contains(part.seq) else { throw CheckpointError(.corrupted, "the checkpoint's part \(field) has order key \(part.seq), outside 0..<2^53") }
            guard seqs.insert(part.seq).inserted else { throw CheckpointError(.corrupted, "the checkpoint's part \(field) repeats order key \(part.seq)") }
            stored[part.replica.tag] = .init(record: part.replica, retired: part.retired, seq: part.seq, mark: 0)
            if part.retired {
                retired.append(part)
            } else {
                guard backends[part.replica.backend] != nil else {
                    throw CheckpointError(.corrupted, "the checkpoint's part \(field) names backend \(part.replica.backend), which it does not hold")
                }
                lists[part.replica.backend, default: []].append(part)
            }
        }
        var state = BackendState()
        state.backends = backends.keys.sorted().map { tag in
            var backend = backends[tag]!
            backend.replicas = (lists[tag] ?? []).sorted { $0.seq < $1.seq }.map(\.replica)
            return backend
        }
        state.retiredReplicas = retired.sorted { $0.seq < $1.seq }.map(\.replica)
        state.liveNodes = liveNodes
        state.configsVersion = header.state.configsVersion
        state.lastAppliedRequest = header.state.lastAppliedRequest
        state.nextGeneration = header.state.nextGeneration
        state.recentGoalOutcomes = goalOutcomes
        state.requestsApplied = header.state.requestsApplied
        state.routingVersion = header.state.routingVersion
        return (state, CheckpointLedger(backends: state.backends, replicas: stored, liveNodes: liveNodes, goalOutcomes: goalOutcomes,
                                        pendingUserConfigs: header.pendingUserConfigs.map(Set.init)))
    }

    /// The replica parts, decoded as arrays (one decoder pass per slice, not one per replica),
    /// the slices on every core at once: at 100,000 replicas this is most of a takeover's load.
    private static func decodeReplicaParts(_ values: [[UInt8]], fields: [String]) throws(CheckpointError) -> [ReplicaPart] {
        let slices = values.count < 20_000 ? 1 : max(1, min(ProcessInfo.processInfo.activeProcessorCount, 8))
        let size = (values.count + slices - 1) / max(slices, 1)
        let bounds = stride(from: 0, to: max(values.count, 1), by: max(size, 1)).map { $0..<min($0 + size, values.count) }
        let results = Mutex<[Int: Result<[ReplicaPart], CheckpointError>]>([:])
        DispatchQueue.concurrentPerform(iterations: bounds.count) { slice in
            let range = bounds[slice]
            var array: [UInt8] = [UInt8(ascii: "[")]
            array.reserveCapacity(values[range].reduce(2) { $0 + $1.count + 1 })
            for index in range {
                if index != range.lowerBound { array.append(UInt8(ascii: ",")) }
                array += values[index]
            }
            array.append(UInt8(ascii: "]"))
            let result: Result<[ReplicaPart], CheckpointError>
            do {
                result = .success(try JSONDecoder().decode([ReplicaPart].self, from: Data(array)))
            } catch {
                let described = describe(error, fields: Array(fields[range]))
                result = .failure(CheckpointError(.corrupted, "the checkpoint's replica parts are corrupted: \(described)"))
            }
            results.withLock { $0[slice] = result }
        }
        var parts: [ReplicaPart] = []
        parts.reserveCapacity(values.count)
        for slice in bounds.indices {
            switch results.withLock({ $0[slice] }) {
            case .success(let decoded)?: parts += decoded
            case .failure(let error)?: throw error
            case nil: throw CheckpointError(.corrupted, "the checkpoint's replica parts were not decoded")
            }
        }
        return parts
    }

    /// Version 1: the whole state in one document (still loaded; tests write it).
    static func encodeVersion1(_ state: BackendState) -> [UInt8] {
        var writer = CheckpointWriter(capacity: 4096 + 300 * state.backends.reduce(0) { $0 + 1 + $1.replicas.count })
        writer.write(state, schemaVersion: 1)
        return writer.bytes
    }

    /// Version 1 through `JSONEncoder`: the reference the fast writer is tested against.
    static func encodeWithFoundation(_ state: BackendState) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard let data = try? encoder.encode(Envelope(schemaVersion: 1, state: state)) else {
            preconditionFailure("a BackendState must always encode")
        }
        return Array(data)
    }

    static func encodeHeader(_ state: BackendState, backends: Int, replicas: Int, pushing: [String] = []) -> [UInt8] {
        var writer = CheckpointWriter(capacity: 512 + 32 * pushing.count)
        writer.writeHeader(state, schemaVersion: schemaVersion, backends: backends, replicas: replicas, pushing: pushing)
        return writer.bytes
    }

    static func encodePart(backend: BackendRecord) -> [UInt8] {
        var writer = CheckpointWriter(capacity: 512)
        writer.write(backend)
        return writer.bytes
    }

    static func encodePart(replica: ReplicaRecord, retired: Bool, seq: Int) -> [UInt8] {
        var writer = CheckpointWriter(capacity: 256)
        writer.object { o in
            o.member("replica") { $0.write(replica) }
            o.member("retired") { $0.bool(retired) }
            o.member("seq") { $0.integer(seq) }
        }
        return writer.bytes
    }

    static func encodePart(goalOutcomes: [GoalOutcome]) -> [UInt8] {
        var writer = CheckpointWriter(capacity: 128 * goalOutcomes.count + 2)
        writer.write(goalOutcomes)
        return writer.bytes
    }

    static func encodePart(liveNodes: [String]) -> [UInt8] {
        var writer = CheckpointWriter(capacity: 16 * liveNodes.count + 2)
        writer.array(liveNodes) { $0.string($1) }
        return writer.bytes
    }

    private struct Envelope: Codable {
        var schemaVersion: Int
        var state: BackendState
    }

    private struct VersionOnly: Decodable {
        var schemaVersion: Int
    }

    private struct Header: Decodable {
        struct Scalars: Decodable {
            var configsVersion: Int
            var lastAppliedRequest: RequestID?
            var nextGeneration: Int
            var requestsApplied: Int
            var routingVersion: Int
        }
        struct Counts: Decodable {
            var backends: Int
            var replicas: Int
        }
        var schemaVersion: Int
        var state: Scalars
        var parts: Counts
        /// Absent from checkpoints written before it (every RUNNING replica's is pushed then).
        var pendingUserConfigs: [String]?
    }

    private struct ReplicaPart: Decodable {
        var replica: ReplicaRecord
        var retired: Bool
        var seq: Int
    }

    /// Structure JSON alone cannot promise.
    static func consistencyProblem(_ state: BackendState) -> String? {
        var seenTags: Set<String> = []
        var previous: String?
        for backend in state.backends {
            if let previous, previous >= backend.tag { return "backends are not sorted by tag at \"\(backend.tag)\"" }
            previous = backend.tag
            for replica in backend.replicas {
                if replica.backend != backend.tag { return "replica \(replica.tag) is listed under backend \(backend.tag) but names \(replica.backend)" }
                if replica.state.occupiesNode && replica.node == nil { return "replica \(replica.tag) is \(replica.state.rawValue) without a node" }
                if !seenTags.insert(replica.tag).inserted { return "replica \(replica.tag) appears twice" }
            }
        }
        for replica in state.retiredReplicas where !seenTags.insert(replica.tag).inserted {
            return "replica \(replica.tag) appears twice"
        }
        return nil
    }

    /// A decoding error, its path in the document; `fields` name the elements of an array of
    /// parts (its index becomes the part's field).
    private static func describe(_ error: any Error, fields: [String] = []) -> String {
        guard let error = error as? DecodingError else { return "\(error)" }
        func path(_ context: DecodingError.Context) -> String {
            var codingPath = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }
            if !fields.isEmpty, let index = context.codingPath.first?.intValue, index < fields.count { codingPath[0] = "(part \(fields[index]))" }
            let keys = codingPath.joined()
            return keys.isEmpty ? "at the top level" : "at \(keys.hasPrefix(".") ? String(keys.dropFirst()) : keys)"
        }
        switch error {
        case .keyNotFound(let key, let context): return "missing \"\(key.stringValue)\" \(path(context))"
        case .typeMismatch(_, let context), .valueNotFound(_, let context): return "\(context.debugDescription) \(path(context))"
        case .dataCorrupted(let context): return "\(context.debugDescription) \(path(context))"
        @unknown default: return "\(error)"
        }
    }
}

/// Why a checkpoint could not be read.
public typealias CheckpointError = DomainError<CheckpointErrorDomain>

/// The codes of ``CheckpointError``.
public enum CheckpointErrorDomain {}

extension ErrorCode where Domain == CheckpointErrorDomain {
    /// Written by a Swerve with another schema version.
    public static let unknownVersion = Self("unknownVersion")
    /// Not JSON, missing fields, wrong types, or inconsistent records.
    public static let corrupted = Self("corrupted")
}

extension Reconciler {
    /// What a new leader does after loading a checkpoint, before its first step: it adopts
    /// every replica as it is and repeats every action the old leader may not have finished
    /// (all are idempotent). STARTING replicas are assigned again and keep waiting for
    /// readiness; RUNNING ones are adopted untouched (nothing restarts), and those in
    /// `pendingUserConfigs` (the pushes of the step that wrote the checkpoint; nil: unknown,
    /// every one) get their user config pushed again; STOPPING ones are asked to drain again
    /// with their original deadline; recent goal outcomes are announced again.
    public static func recoveryActions(for state: BackendState, pendingUserConfigs: Set<String>? = nil) -> [Action] {
        var actions: [Action] = [.publishBackendConfigs(state.backendConfigsView), .publishRoutingView(state.routingView)]
        var assignments: [Action] = []
        var pushes: [Action] = []
        for backend in state.backends {
            for replica in backend.replicas {
                switch replica.state {
                case .stopping:
                    if let deadline = replica.drainDeadline { actions.append(.drain(replica.reference, deadline: deadline)) }
                case .starting where replica.version == backend.version:
                    // (An outdated STARTING replica is never left by a step; if one were, the
                    // next step stops it — re-assigning it the current config would mislabel it.)
                    assignments.append(.assign(ReplicaAssignment(
                        replica: replica.reference, version: replica.version, replicaConfig: backend.replicaConfig,
                        userConfig: backend.config.userConfig, maxConcurrentQueries: backend.config.maxConcurrentQueries,
                        gracefulShutdownWaitLoopS: backend.config.gracefulShutdownWaitLoopS)))
                case .running where pendingUserConfigs?.contains(replica.tag) ?? true:
                    pushes.append(.pushUserConfig(replica.reference, userConfig: backend.config.userConfig))
                case .running:
                    break // its push landed: the step after it ran
                case .starting, .shouldStart, .shouldStop, .stopped:
                    break // the next step stops, places, drains or forgets them
                }
            }
        }
        for replica in state.retiredReplicas where replica.state == .stopping {
            if let deadline = replica.drainDeadline { actions.append(.drain(replica.reference, deadline: deadline)) }
        }
        actions += assignments + pushes
        actions += state.recentGoalOutcomes.map { outcome in
            outcome.failure.map { .failGoal(outcome.goal, reason: $0) } ?? .completeGoal(outcome.goal)
        }
        return actions
    }

    /// Assignments no replica of `state` accounts for, from each node's assignment hash
    /// (`assigned`: node → replica tags). A step's writes run after its checkpoint; when they
    /// break part-way, a replica the checkpoint already forgot may keep its assignment — and a
    /// node agent runs whatever is assigned, forever. A leader sweeps them at every load: each
    /// is forgotten (its assignment and keys removed), so its node stops the worker.
    public static func orphanedAssignments(in state: BackendState, assigned: [String: [String]]) -> [ReplicaReference] {
        var orphans: [ReplicaReference] = []
        let known = state.replicaPositions()
        for (node, tags) in assigned.sorted(by: { $0.key < $1.key }) {
            for tag in tags.sorted() where known[tag] == nil {
                orphans.append(ReplicaReference(tag: tag, backend: String(tag.prefix { $0 != "#" }), node: node))
            }
        }
        return orphans
    }
}
