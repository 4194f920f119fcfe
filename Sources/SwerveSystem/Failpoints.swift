public import SwerveErrors
import Glibc
import Synchronization

/// Named points in a process's code where a test can make it crash, or fail a step, exactly
/// between two writes (see docs/PROTOCOL.md, "Failure injection").
///
/// Guarantees: compiled in and inert unless `SWERVE_FAILPOINTS` names a point; a point that is
/// not armed costs one dictionary lookup; an armed point fires once, on its N-th hit, and is
/// inert after that; an unknown name or action is refused when the plan is parsed (a typo
/// never silently disables a test).
public final class Failpoints: Sendable {
    /// What an armed point does when it fires.
    public enum Action: String, Sendable, Hashable, CaseIterable {
        /// SIGKILL this process: nothing after the point runs, not even cleanup (a crash).
        case crash
        /// Throw a ``FailpointError``: the caller's error path runs (a failed step).
        case error
    }

    /// When and how an armed point fires.
    public struct Trigger: Sendable, Hashable {
        public var action: Action
        /// Fires on this hit of the point (1 = the first).
        public var onHit: Int

        public init(action: Action, onHit: Int = 1) {
            self.action = action
            self.onHit = onHit
        }
    }

    /// The environment variable tests set: `name=action[@hit]` separated by `;` or `,`, e.g.
    /// `controller.after-checkpoint=crash` or `controller.after-assign=error@2`.
    public static let environmentVariable = "SWERVE_FAILPOINTS"

    /// No armed point.
    public static let none = Failpoints(plan: [:])

    public let plan: [String: Trigger]
    private let hits = Mutex<[String: Int]>([:])

    public init(plan: [String: Trigger]) {
        self.plan = plan
    }

    /// Parses a plan, refusing names outside `known` and malformed entries; an empty or
    /// missing text arms nothing.
    public static func parse(_ text: String?, known: [String]) throws(FailpointError) -> Failpoints {
        var plan: [String: Trigger] = [:]
        for entry in (text ?? "").split(whereSeparator: { $0 == ";" || $0 == "," }) {
            let trimmed = entry.trimmingSpaces
            guard !trimmed.isEmpty else { continue }
            let parts = trimmed.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2 else {
                throw FailpointError(.invalidPlan, "\(environmentVariable): '\(trimmed)' is not name=action[@hit]")
            }
            let name = parts[0]
            // `name:subject` arms the point for one subject only (see `hit(_:subject:)`).
            let point = String(name.split(separator: ":", maxSplits: 1).first ?? "")
            guard known.contains(point) else {
                throw FailpointError(.invalidPlan, "\(environmentVariable): unknown failpoint '\(point)'; known: \(known.joined(separator: ", "))")
            }
            let actionAndHit = parts[1].split(separator: "@", maxSplits: 1).map(String.init)
            guard let action = Action(rawValue: actionAndHit[0]) else {
                let actions = Action.allCases.map(\.rawValue).joined(separator: ", ")
                throw FailpointError(.invalidPlan, "\(environmentVariable): failpoint '\(name)': unknown action '\(actionAndHit[0])'; one of \(actions)")
            }
            var onHit = 1
            if actionAndHit.count == 2 {
                guard let hit = Int(actionAndHit[1]), hit >= 1 else {
                    throw FailpointError(.invalidPlan, "\(environmentVariable): failpoint '\(name)': the hit after '@' must be a whole number ≥ 1, got '\(actionAndHit[1])'")
                }
                onHit = hit
            }
            plan[name] = Trigger(action: action, onHit: onHit)
        }
        return Failpoints(plan: plan)
    }

    /// Whether `name` may still fire (callers use it to decide whether to split their work
    /// at the point; it does not count as a hit).
    public func isArmed(_ name: String) -> Bool {
        guard let trigger = plan[name] else { return false }
        return hits.withLock { $0[name, default: 0] } < trigger.onHit
    }

    /// The point was reached for `subject` (a goal, a replica): fires as ``hit(_:)`` does when
    /// the plan arms `name:subject` or `name` itself.
    public func hit(_ name: String, subject: String) throws {
        if plan["\(name):\(subject)"] != nil { try hit("\(name):\(subject)") } else { try hit(name) }
    }

    /// The point was reached: counts the hit, and fires when it is the armed one — SIGKILLs the
    /// process (`crash`) or throws (`error`). Announces the firing on standard error first.
    public func hit(_ name: String) throws {
        guard let trigger = plan[name] else { return }
        let count = hits.withLock { hits in
            hits[name, default: 0] += 1
            return hits[name]!
        }
        guard count == trigger.onHit else { return }
        let line = "failpoint \(name) fired (\(trigger.action.rawValue), hit \(count))\n"
        _ = line.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
        switch trigger.action {
        case .crash:
            kill(getpid(), SIGKILL)
            // SIGKILL cannot be caught; it is delivered before kill returns to a single-threaded
            // caller, and at the latest at the next scheduling point otherwise.
            while true { pause() }
        case .error:
            throw FailpointError(.fired, "failpoint \(name) fired")
        }
    }
}

/// A failpoint plan that cannot be read, or an armed point that fired with `error`.
public typealias FailpointError = DomainError<FailpointErrorDomain>

/// The codes of ``FailpointError``.
public enum FailpointErrorDomain {}

extension ErrorCode where Domain == FailpointErrorDomain {
    public static let invalidPlan = Self("invalidPlan")
    public static let fired = Self("fired")
}

extension Substring {
    fileprivate var trimmingSpaces: String {
        String(drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
    }
}
