import Foundation
import Logging
import SwerveCore

/// One log line per decision a step carried out, with the backend and replica tags as
/// metadata: what an operator reads to learn why a replica started, drained or was killed.
/// The checkpoint and the snapshots are logged at debug (every step that changes anything
/// writes them).
enum DecisionLog {
    static func log(_ actions: [Action], now: Timestamp, logger: Logger) {
        for action in actions {
            switch action {
            case .writeCheckpoint:
                logger.debug("wrote the checkpoint")
            case .publishBackendConfigs(let view):
                logger.debug("published backend configs", metadata: ["version": "\(view.version)"])
            case .publishRoutingView(let view):
                logger.debug("published the routing view", metadata: ["version": "\(view.version)"])
            case .assign(let assignment):
                logger.info("assigned \(assignment.replica.tag) to node \(assignment.replica.node)", metadata: metadata(assignment.replica))
            case .drain(let replica, let deadline):
                let seconds = String(format: "%.1f", max(0, deadline.seconds(since: now)))
                logger.info("asked \(replica.tag) to drain; killed in \(seconds) s unless drained", metadata: metadata(replica))
            case .forceKill(let replica):
                logger.info("killed \(replica.tag) without draining", metadata: metadata(replica))
            case .pushUserConfig(let replica, _):
                logger.info("sent \(replica.tag) its user config", metadata: metadata(replica))
            case .forget(let replica):
                logger.info("forgot stopped \(replica.tag)", metadata: metadata(replica))
            case .completeGoal(let goal):
                logger.info("goal \(goal) completed", metadata: ["goal": "\(goal)"])
            case .failGoal(let goal, let reason):
                logger.notice("goal \(goal) failed: \(reason)", metadata: ["goal": "\(goal)"])
            }
        }
    }

    private static func metadata(_ replica: ReplicaReference) -> Logger.Metadata {
        ["backend": "\(replica.backend)", "replica": "\(replica.tag)", "node": "\(replica.node)"]
    }
}
