import Metrics
import Synchronization

/// The node agent's metrics, recorded through swift-metrics (`swerve node --metrics-address`
/// exports them in Prometheus format; without a bootstrapped backend they cost nothing):
///
/// - `swerve_node_workers` (gauge): workers running now;
/// - `swerve_node_worker_starts_total{result}` (counter): `started`, `failed` (the program
///   could not be run) or `refused` (a command the node does not allow);
/// - `swerve_node_worker_exits_total{reason}` (counter): ``exitReason(code:signal:killedByAgent:)``;
/// - `swerve_node_drain_duration_seconds` (histogram): from the agent seeing a worker's drain
///   request to the worker's exit.
public final class NodeMetrics: Sendable {
    public static let drainDurationLabel = "swerve_node_drain_duration_seconds"
    /// Drains wait for a backend's wait loop (2 s by default) and then for requests in flight.
    public static let drainDurationBuckets: [Duration] = [
        .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2), .seconds(5),
        .seconds(10), .seconds(20), .seconds(30), .seconds(60), .seconds(120),
    ]
    static let exitReasons = ["drained", "failed", "crashed", "killed"]
    static let startResults = ["started", "failed", "refused"]

    let workers = Gauge(label: "swerve_node_workers")
    let drainDuration = Timer(label: drainDurationLabel)
    private let exits: [String: Counter]
    private let starts: [String: Counter]

    public init() {
        exits = Dictionary(uniqueKeysWithValues: Self.exitReasons.map { ($0, Counter(label: "swerve_node_worker_exits_total", dimensions: [("reason", $0)])) })
        starts = Dictionary(uniqueKeysWithValues: Self.startResults.map { ($0, Counter(label: "swerve_node_worker_starts_total", dimensions: [("result", $0)])) })
        workers.record(0)
    }

    func started(_ result: String) { starts[result]?.increment() }

    func running(_ count: Int) { workers.record(count) }

    func drained(after duration: Duration) { drainDuration.record(duration: duration) }

    func exited(code: Int32?, signal: Int32?, killedByAgent: Bool) {
        exits[Self.exitReason(code: code, signal: signal, killedByAgent: killedByAgent)]?.increment()
    }

    /// Why a worker exited, in a few words a dashboard can group by: `drained` (exit 0: it
    /// drained, as asked), `killed` (the agent's SIGKILL: a drain past its deadline, a replica
    /// no longer assigned), `crashed` (any other signal: OOM killer, a segfault, someone's
    /// kill), `failed` (a non-zero exit: its code failed, or its configuration was bad).
    static func exitReason(code: Int32?, signal: Int32?, killedByAgent: Bool) -> String {
        if let signal { return killedByAgent && signal == 9 ? "killed" : "crashed" }
        return code == 0 ? "drained" : "failed"
    }
}
