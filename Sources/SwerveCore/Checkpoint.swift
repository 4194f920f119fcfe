import Foundation
public import SwerveErrors

/// The checkpoint: the whole ``BackendState`` as versioned JSON.
///
/// Encoding is deterministic (sorted keys; backends sorted by tag), so the same state always
/// gives the same bytes. Decoding refuses an unknown schema version and any corrupted or
/// incomplete document with an error that names the problem: it never yields an empty state
/// that could overwrite the real one.
public enum Checkpoint {
    public static let schemaVersion = 1

    private struct Envelope: Codable {
        var schemaVersion: Int
        var state: BackendState
    }

    private struct VersionOnly: Decodable {
        var schemaVersion: Int
    }

    public static func encode(_ state: BackendState) -> [UInt8] {
        var writer = CheckpointWriter(capacity: 4096 + 300 * state.backends.reduce(0) { $0 + 1 + $1.replicas.count })
        writer.write(state, schemaVersion: schemaVersion)
        return writer.bytes
    }

    /// The same document through `JSONEncoder`: the reference the fast writer is tested against.
    static func encodeWithFoundation(_ state: BackendState) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard let data = try? encoder.encode(Envelope(schemaVersion: schemaVersion, state: state)) else {
            preconditionFailure("a BackendState must always encode")
        }
        return Array(data)
    }

    public static func decode(_ bytes: [UInt8]) throws(CheckpointError) -> BackendState {
        let data = Data(bytes)
        let decoder = JSONDecoder()
        let version: Int
        do {
            version = try decoder.decode(VersionOnly.self, from: data).schemaVersion
        } catch {
            throw CheckpointError(.corrupted, "the checkpoint is not a versioned Swerve checkpoint: \(describe(error))")
        }
        guard version == schemaVersion else {
            throw CheckpointError(.unknownVersion, "the checkpoint has schema version \(version), but this Swerve reads only version \(schemaVersion): upgrade this controller, or stop the newer one that wrote it")
        }
        let state: BackendState
        do {
            state = try decoder.decode(Envelope.self, from: data).state
        } catch {
            throw CheckpointError(.corrupted, "the checkpoint is corrupted: \(describe(error))")
        }
        if let problem = consistencyProblem(state) {
            throw CheckpointError(.corrupted, "the checkpoint is inconsistent: \(problem)")
        }
        return state
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

    private static func describe(_ error: any Error) -> String {
        guard let error = error as? DecodingError else { return "\(error)" }
        func path(_ context: DecodingError.Context) -> String {
            let keys = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
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
    /// readiness; RUNNING ones are adopted untouched (nothing restarts); STOPPING ones are asked
    /// to drain again with their original deadline; recent goal outcomes are announced again.
    public static func recoveryActions(for state: BackendState) -> [Action] {
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
                case .running:
                    pushes.append(.pushUserConfig(replica.reference, userConfig: backend.config.userConfig))
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
