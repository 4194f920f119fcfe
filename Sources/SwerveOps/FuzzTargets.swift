import Foundation
import SwerveClient
import SwerveCore
import SwerveDashboard
import SwerveProtocol

/// Every reader of a value from Redis (or from a user's file) that `swerve-ops fuzz` feeds
/// mutated inputs. Each must return or throw for any bytes: never trap, hang or allocate
/// without bound.
enum FuzzTarget: String, CaseIterable, Sendable {
    case checkpoint, assignment, ready, drain, drained, exit, node, cordon, owner, userConfig = "user-config"
    case control, wake, leader, leaderEvent = "leader-event", configsSnapshot = "snapshot-configs"
    case routingSnapshot = "snapshot-routing", snapshotNotice = "snapshot-notice", goal, status
    case requestAttempt = "request-attempt", requestEntry = "request-entry", eventEntry = "event-entry", spec
    case routerTraffic = "router-traffic"

    /// Reads `bytes` the way the process that meets them does; the outcome is ignored.
    func run(_ bytes: [UInt8]) {
        switch self {
        case .checkpoint: _ = try? Checkpoint.decode(Self.storedCheckpoint(bytes))
        case .assignment: decode(AssignmentDocument.self, bytes)
        case .ready: decode(ReadyRecord.self, bytes)
        case .drain: decode(DrainRequest.self, bytes)
        case .drained: decode(DrainedRecord.self, bytes)
        case .exit: decode(ExitRecord.self, bytes)
        case .node: decode(NodeRecord.self, bytes)
        case .cordon: decode(NodeCordonDocument.self, bytes)
        case .owner: decode(NodeOwnerDocument.self, bytes)
        case .userConfig: decode(UserConfigDocument.self, bytes)
        case .control: decode(ControlMessage.self, bytes)
        case .wake: decode(WakeUp.self, bytes)
        case .leader: decode(LeaderRecord.self, bytes)
        case .leaderEvent: decode(LeaderEvent.self, bytes)
        case .configsSnapshot: decode(Snapshot<BackendConfigsView>.self, bytes)
        case .routingSnapshot: decode(Snapshot<RoutingView>.self, bytes)
        case .snapshotNotice: decode(SnapshotNotice.self, bytes)
        case .goal: decode(GoalOutcomeDocument.self, bytes)
        case .status: decode(StatusDocument.self, bytes)
        case .requestAttempt: decode(RequestAttemptDocument.self, bytes)
        case .routerTraffic:
            // What the dashboard does with a router's report: decode, check, then count.
            if let report = try? DocumentCodec.decode(RouterTrafficReport.self, from: bytes, source: "fuzz"), report.problems == nil {
                var window = TrafficWindow()
                _ = window.take([report])
                var later = report
                later.at = Timestamp(milliseconds: report.at.milliseconds &+ 1000)
                _ = window.take([later])
            }
        case .requestEntry:
            guard let fields = Self.streamFields(bytes) else { return }
            if case .success(let request) = RequestEntry.decode(id: "1-1", fields: fields, source: "fuzz") {
                _ = request.operation.problems() // what the leader checks next
            }
        case .eventEntry:
            guard let fields = Self.streamFields(bytes) else { return }
            _ = try? EventEntry(id: "1-1", fields: fields, source: "fuzz")
        case .spec:
            _ = try? BackendSpec.parse(String(decoding: bytes, as: UTF8.self), source: "fuzz")
        }
    }

    private func decode<Document: ProtocolDocument>(_ type: Document.Type, _ bytes: [UInt8]) {
        _ = try? DocumentCodec.decode(type, from: bytes, source: "fuzz")
    }

    /// A checkpoint as stored: a version 1 document is the header alone; a version 2 one is
    /// written (the corpus's form) as `{"header": {…}, "parts": {field: value…}}`, each value
    /// JSON in place.
    static func storedCheckpoint(_ bytes: [UInt8]) -> Checkpoint.Stored {
        guard let object = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any],
              let header = object["header"], let parts = object["parts"] as? [String: Any],
              let headerBytes = try? JSONSerialization.data(withJSONObject: header, options: .fragmentsAllowed) else {
            return Checkpoint.Stored(header: bytes)
        }
        var stored = Checkpoint.Stored(header: Array(headerBytes))
        for (field, value) in parts {
            if let data = try? JSONSerialization.data(withJSONObject: value, options: .fragmentsAllowed) { stored.parts[field] = Array(data) }
        }
        return stored
    }

    /// A stream entry's fields, written as a JSON object of strings (the corpus's form).
    static func streamFields(_ bytes: [UInt8]) -> [String: [UInt8]]? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] else { return nil }
        var fields: [String: [UInt8]] = [:]
        for (name, value) in object {
            guard let text = value as? String else { return nil }
            fields[name] = Array(text.utf8)
        }
        return fields
    }
}

/// Seeded mutations of valid documents: bit flips, interesting bytes and tokens (extreme
/// numbers, NaN, deep nesting, long strings), deleted, repeated and truncated ranges. Pure:
/// the same seed gives the same inputs, so a run can be repeated.
struct FuzzMutator {
    /// No input grows beyond this (the decoders' callers read values of about this size at most).
    static let maximumSize = 1 << 20
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    /// SplitMix64.
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func below(_ bound: Int) -> Int { bound <= 1 ? 0 : Int(next() % UInt64(bound)) }

    static let interestingBytes = Array("\0\u{7F}\"{}[],:-.e9\\".utf8) + [0xFF, 0xC0, 0x80]

    static let tokens: [String] = [
        "1e309", "-1e309", "-0", "0.0000000000000000000001", "9223372036854775807", "9223372036854775808", "-9223372036854775809",
        "18446744073709551616", "NaN", "Infinity", "null", "true", "false", "\"\"", "{}", "[]", "\"\\u0000\"", "\"\\ud800\"",
        "\"schemaVersion\"", "2", "-1", "\"25%\"", "\"101%\"", "\"#\"", "\"/\"", "\"\\n\"",
        String(repeating: "[", count: 5_000), String(repeating: "{\"a\":", count: 2_000),
        "\"" + String(repeating: "x", count: 70_000) + "\"",
    ]

    /// A mutation of `input` (1–4 edits).
    mutating func mutate(_ input: [UInt8]) -> [UInt8] {
        var bytes = input
        for _ in 0...below(4) {
            let position = below(bytes.count + 1)
            switch below(8) {
            case 0 where !bytes.isEmpty:
                bytes[min(position, bytes.count - 1)] ^= UInt8(1 << below(8))
            case 1 where !bytes.isEmpty:
                bytes[min(position, bytes.count - 1)] = Self.interestingBytes[below(Self.interestingBytes.count)]
            case 2:
                bytes.insert(contentsOf: Array(Self.tokens[below(Self.tokens.count)].utf8), at: position)
            case 3 where !bytes.isEmpty:
                let end = min(bytes.count, position + 1 + below(32))
                if position < end { bytes.removeSubrange(position..<end) }
            case 4 where position < bytes.count:
                let end = min(bytes.count, position + 1 + below(64))
                bytes.insert(contentsOf: bytes[position..<end], at: below(bytes.count + 1))
            case 5:
                bytes = Array(bytes.prefix(position))
            case 6:
                // Replace a number with an extreme one.
                if let start = bytes[min(position, bytes.count)...].firstIndex(where: { (48...57).contains($0) }) {
                    var end = start
                    while end < bytes.count, (48...57).contains(bytes[end]) || bytes[end] == 46 { end += 1 }
                    bytes.replaceSubrange(start..<end, with: Array(Self.tokens[below(8)].utf8))
                }
            default:
                bytes.insert(UInt8(truncatingIfNeeded: next()), at: position)
            }
        }
        return bytes.count > Self.maximumSize ? Array(bytes.prefix(Self.maximumSize)) : bytes
    }
}
