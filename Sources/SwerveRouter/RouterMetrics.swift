import Foundation
import Metrics
import SwerveCore
import SwerveProtocol
import Synchronization

/// The router's metrics, through swift-metrics (`swerve router` exports them in Prometheus
/// format on its admin port):
///
/// - `swerve_router_requests_total{backend,status}` and
///   `swerve_router_request_duration_seconds{backend}` (histogram);
/// - `swerve_router_in_flight{replica}` (a replica's series goes once no view lists it and
///   nothing is in flight on it), `swerve_router_queue_length{backend}`;
/// - `swerve_router_rejected_total{backend,reason}` (503s: `queue_full`, `queue_timeout`,
///   `no_replicas`; 502s: `unreachable`), `swerve_router_retries_total{backend,reason}`
///   (`connect_failed`, `unprocessed`, `connection_lost`), `swerve_router_ejections_total{backend}`,
///   `swerve_router_upstream_timeouts_total{backend}`;
/// - `swerve_router_client_connections`: client connections open now (refused ones included
///   until they are closed);
/// - `swerve_router_client_closed_total{reason}`: client connections the router closed for
///   what they did (`idle_timeout`, `header_timeout`, `head_too_large`, `malformed`,
///   `connection_limit`);
/// - `swerve_router_view_version{kind}`, `swerve_router_view_epoch{kind}` and
///   `swerve_router_view_updated_timestamp_seconds` (the age is now minus this).
final class RouterMetrics: Sendable {
    static let durationLabel = "swerve_router_request_duration_seconds"
    static let durationBuckets: [Duration] = [
        .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10),
        .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(5),
    ]

    private let counters = Mutex<[String: Counter]>([:])
    private let gauges = Mutex<[String: (gauge: Gauge, value: Int)]>([:])
    private let viewUpdated = Gauge(label: "swerve_router_view_updated_timestamp_seconds")
    private let openConnections = Gauge(label: "swerve_router_client_connections")
    /// Per-request series, found by one lookup of the backend (no key strings built per request).
    private let perBackend = Mutex<[String: BackendSeries]>([:])
    private let inFlight = Mutex<[String: (gauge: Gauge, value: Int)]>([:])

    private final class BackendSeries: Sendable {
        let backend: String
        let duration: Timer
        let statuses = Mutex<[Int: Counter]>([:])
        /// The traffic report's counts (``RouterTrafficReport``): lock-free, one add each per request.
        let requests = Atomic<Int>(0)
        let errors = Atomic<Int>(0)
        let buckets: [Tally] = (0...RouterTrafficReport.bucketBounds.count).map { _ in Tally() }

        final class Tally: Sendable {
            let count = Atomic<Int>(0)
        }

        init(backend: String) {
            self.backend = backend
            duration = Timer(label: RouterMetrics.durationLabel, dimensions: [("backend", backend)])
        }

        func count(status: Int, duration: Duration) {
            requests.wrappingAdd(1, ordering: .relaxed)
            if status >= 500 { errors.wrappingAdd(1, ordering: .relaxed) }
            let seconds = Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
            let bucket = RouterTrafficReport.bucketBounds.firstIndex { seconds <= $0 } ?? RouterTrafficReport.bucketBounds.count
            buckets[bucket].count.wrappingAdd(1, ordering: .relaxed)
        }

        var traffic: RouterTrafficReport.Backend {
            RouterTrafficReport.Backend(requests: requests.load(ordering: .relaxed), errors: errors.load(ordering: .relaxed),
                                        buckets: buckets.map { $0.count.load(ordering: .relaxed) })
        }

        func counter(_ status: Int) -> Counter {
            statuses.withLock { statuses in
                if let counter = statuses[status] { return counter }
                let counter = Counter(label: "swerve_router_requests_total", dimensions: [("backend", backend), ("status", "\(status)")])
                statuses[status] = counter
                return counter
            }
        }
    }

    func request(backend: String, status: Int, duration: Duration) {
        let series = perBackend.withLock { series in
            if let found = series[backend] { return found }
            let created = BackendSeries(backend: backend)
            series[backend] = created
            return created
        }
        series.counter(status).increment()
        series.duration.record(duration: duration)
        series.count(status: status, duration: duration)
    }

    /// Every backend's requests since this router started, for its traffic report.
    func traffic() -> [String: RouterTrafficReport.Backend] {
        let all = perBackend.withLock { Array($0.values) }
        return Dictionary(uniqueKeysWithValues: all.map { ($0.backend, $0.traffic) })
    }

    func rejected(backend: String, reason: String) {
        counter("swerve_router_rejected_total", [("backend", backend), ("reason", reason)]).increment()
    }

    func retried(backend: String, reason: ExchangeStateMachine.RetryReason) {
        counter("swerve_router_retries_total", [("backend", backend), ("reason", reason.rawValue)]).increment()
    }

    func upstreamTimedOut(backend: String) {
        counter("swerve_router_upstream_timeouts_total", [("backend", backend)]).increment()
    }

    func clientConnections(_ open: Int) {
        openConnections.record(open)
    }

    func clientClosed(reason: String) {
        counter("swerve_router_client_closed_total", [("reason", reason)]).increment()
    }

    func ejected(backend: String) {
        counter("swerve_router_ejections_total", [("backend", backend)]).increment()
    }

    func inFlightChanged(_ replica: String, by delta: Int) {
        let (gauge, value) = inFlight.withLock { inFlight in
            var entry = inFlight[replica] ?? (Gauge(label: "swerve_router_in_flight", dimensions: [("replica", replica)]), 0)
            entry.value += delta
            inFlight[replica] = entry
            return entry
        }
        gauge.record(value)
    }

    func queueLength(_ backend: String, _ length: Int) {
        adjust("swerve_router_queue_length", [("backend", backend)], to: length)
    }

    func viewChanged(_ view: RouterView) {
        forgetInFlight(except: Set(view.table.backends.values.flatMap { $0.replicas.map(\.tag) }))
        versionsChanged(view)
    }

    /// After a routing delta: only the replicas that left the view lose their idle in-flight
    /// series (one still busy then goes at the next whole re-read), so a delta costs O(what it
    /// changed).
    func deltaApplied(_ view: RouterView, left: [String]) {
        forgetInFlight(left)
        versionsChanged(view)
    }

    private func versionsChanged(_ view: RouterView) {
        if let configs = view.configs {
            adjust("swerve_router_view_version", [("kind", "configs")], to: configs.view.version)
            adjust("swerve_router_view_epoch", [("kind", "configs")], to: Int(configs.epoch))
        }
        if let routing = view.routing {
            adjust("swerve_router_view_version", [("kind", "routing")], to: routing.view.version)
            adjust("swerve_router_view_epoch", [("kind", "routing")], to: Int(routing.epoch))
        }
        viewUpdated.record(Date().timeIntervalSince1970)
    }

    /// Drops the in-flight series of replicas the view no longer lists and nothing is in flight
    /// on, so a router's metrics do not grow with every replica the cluster ever ran.
    func forgetInFlight(_ tags: [String]) {
        let gone = inFlight.withLock { inFlight -> [Gauge] in
            tags.compactMap { tag in inFlight[tag]?.value == 0 ? inFlight.removeValue(forKey: tag)?.gauge : nil }
        }
        for gauge in gone { gauge.destroy() }
    }

    func forgetInFlight(except routed: Set<String>) {
        let gone = inFlight.withLock { inFlight -> [Gauge] in
            let tags = inFlight.filter { !routed.contains($0.key) && $0.value.value == 0 }.map(\.key)
            return tags.compactMap { inFlight.removeValue(forKey: $0)?.gauge }
        }
        for gauge in gone { gauge.destroy() }
    }

    /// The replicas with an in-flight series (for tests).
    var inFlightSeries: Set<String> { inFlight.withLock { Set($0.keys) } }

    private func counter(_ label: String, _ dimensions: [(String, String)]) -> Counter {
        let key = label + dimensions.map { "|\($0.0)=\($0.1)" }.joined()
        return counters.withLock { counters in
            if let counter = counters[key] { return counter }
            let counter = Counter(label: label, dimensions: dimensions)
            counters[key] = counter
            return counter
        }
    }

    private func adjust(_ label: String, _ dimensions: [(String, String)], by delta: Int = 0, to value: Int? = nil) {
        let key = label + dimensions.map { "|\($0.0)=\($0.1)" }.joined()
        let (gauge, recorded) = gauges.withLock { gauges in
            var entry = gauges[key] ?? (Gauge(label: label, dimensions: dimensions), 0)
            entry.value = value ?? entry.value + delta
            gauges[key] = entry
            return entry
        }
        gauge.record(recorded)
    }
}
