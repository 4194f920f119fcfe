import Metrics
import Synchronization
import SwerveCore

/// The controller's metrics, recorded through swift-metrics (`swerve controller` exports them
/// in Prometheus format; without a bootstrapped backend they cost nothing):
///
/// - `swerve_controller_is_leader` (gauge, 0 or 1) and `swerve_controller_epoch` (the epoch
///   of its current or last term);
/// - `swerve_controller_reconcile_duration_seconds` (histogram): one step, observe to written;
/// - `swerve_controller_requests_applied_total`, `swerve_controller_fenced_writes_refused_total`
///   and `swerve_controller_step_failures_total` (counters);
/// - `swerve_controller_replicas{state=…}` (gauge): the replicas the leader records, by state
///   (followers report 0);
/// - `swerve_controller_written_bytes_total{call=…}` (counter): the bytes of every fenced write
///   (script hash, keys and arguments), by call (`writeCheckpoint`, `publishDelta`, `assign`,
///   `appendEvents`…), counted as they are sent: what one change costs Redis and its replicas;
/// - `swerve_controller_autoscale_desired_replicas{backend=…}` and
///   `swerve_controller_autoscale_load{backend=…}` (gauges): each autoscaled backend's decided
///   count and the load it was decided on (requests in flight plus queued, averaged over its
///   look-back period); a backend's series go when it is no longer autoscaled.
public final class ControllerMetrics: Sendable {
    /// The reconcile histogram's label, for choosing its buckets.
    public static let reconcileDurationLabel = "swerve_controller_reconcile_duration_seconds"
    /// Buckets for it: a step takes well under a millisecond when idle.
    public static let reconcileDurationBuckets: [Duration] = [
        .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10),
        .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(1000),
    ]

    let isLeader = Gauge(label: "swerve_controller_is_leader")
    let epoch = Gauge(label: "swerve_controller_epoch")
    let reconcileDuration = Timer(label: reconcileDurationLabel)
    let requestsApplied = Counter(label: "swerve_controller_requests_applied_total")
    let fencedWritesRefused = Counter(label: "swerve_controller_fenced_writes_refused_total")
    let stepFailures = Counter(label: "swerve_controller_step_failures_total")
    private let writtenBytes = Mutex<[String: Counter]>([:])

    /// Counts `bytes` written by fenced calls named `call`.
    func wrote(_ bytes: Int, call: String) {
        let counter = writtenBytes.withLock { counters in
            if let counter = counters[call] { return counter }
            let counter = Counter(label: "swerve_controller_written_bytes_total", dimensions: [("call", call)])
            counters[call] = counter
            return counter
        }
        counter.increment(by: bytes)
    }
    let replicas: [ReplicaState: Gauge] = Dictionary(uniqueKeysWithValues: ReplicaState.allCases.map {
        ($0, Gauge(label: "swerve_controller_replicas", dimensions: [("state", $0.rawValue)]))
    })

    public init() {
        for gauge in replicas.values { gauge.record(0) }
        isLeader.record(0)
    }

    func leading(epoch: Int64) {
        self.epoch.record(epoch)
        isLeader.record(1)
    }

    func following() {
        isLeader.record(0)
        for gauge in replicas.values { gauge.record(0) }
        autoscaled([:])
    }

    private let autoscaling = Mutex<[String: (desired: Gauge, load: Gauge)]>([:])

    /// Each autoscaled backend's decided count and load (`backend` → (desired, load)).
    func autoscaled(_ backends: [String: (desired: Int, load: Double?)]) {
        let (current, gone) = autoscaling.withLock { series -> ([(String, Gauge, Gauge)], [Gauge]) in
            var gone: [Gauge] = []
            for tag in series.keys where backends[tag] == nil {
                if let removed = series.removeValue(forKey: tag) { gone += [removed.desired, removed.load] }
            }
            let current = backends.keys.map { tag in
                let pair = series[tag] ?? (Gauge(label: "swerve_controller_autoscale_desired_replicas", dimensions: [("backend", tag)]),
                                           Gauge(label: "swerve_controller_autoscale_load", dimensions: [("backend", tag)]))
                series[tag] = pair
                return (tag, pair.desired, pair.load)
            }
            return (current, gone)
        }
        for gauge in gone { gauge.destroy() }
        for (tag, desired, load) in current {
            desired.record(backends[tag]?.desired ?? 0)
            if let value = backends[tag]?.load { load.record(value) }
        }
    }

    /// Counts the replicas of `state` by state (reading records in place: no copies).
    func record(_ state: BackendState) {
        var counts: [ReplicaState: Int] = [:]
        for b in state.backends.indices {
            for r in state.backends[b].replicas.indices { counts[state.backends[b].replicas[r].state, default: 0] += 1 }
        }
        for r in state.retiredReplicas.indices { counts[state.retiredReplicas[r].state, default: 0] += 1 }
        for (replicaState, gauge) in replicas { gauge.record(counts[replicaState] ?? 0) }
    }
}
