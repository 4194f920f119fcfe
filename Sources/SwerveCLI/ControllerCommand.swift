import ArgumentParser
import Foundation
import Logging
import SwerveClient
import SwerveController
import SwerveCore
import SwerveErrors
import SwerveMetrics
import SwerveProtocol
import SwerveRedis
import SwerveSystem

/// `swerve controller`: one of the 2–5 controllers; the one holding the lease runs the cluster.
struct ControllerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "controller",
        abstract: "Run a controller: contend for the lease, and while leading, keep the backends running.",
        discussion: """
            Run two to five. SIGTERM or SIGINT releases the lease, so another takes over at once.

            Example:
              swerve controller --redis redis://10.0.0.2:6379 --cluster prod --id ctl-a
            """
    )

    @OptionGroup var cluster: ClusterOptions

    @Option(help: "This controller's id (default: SWERVE_CONTROLLER_ID, else HOST-PID).")
    var id: String? = ProcessInfo.processInfo.environment["SWERVE_CONTROLLER_ID"].flatMap { $0.isEmpty ? nil : $0 }

    @Option(help: "The lease's time to live, in milliseconds (default: SWERVE_LEASE_TTL_MS, else 1000). A dead leader is replaced at once; a frozen or cut-off one after about this long.")
    var leaseTTLMs: Int?

    @Option(help: "How often the leader renews the lease, in milliseconds (default: SWERVE_LEASE_RENEW_MS, else TTL/5).")
    var leaseRenewMs: Int?

    @Option(help: "How often a follower tries for the lease, in milliseconds (default: SWERVE_LEASE_RETRY_MS, else 20, or TTL/6 if less); also how soon it notices a dead leader.")
    var leaseRetryMs: Int?

    @Option(help: "The control loop runs at least this often, in milliseconds (default: SWERVE_TICK_MS, else 100).")
    var tickMs: Int?

    @Option(help: ArgumentHelp("Serve Prometheus metrics on http://HOST:PORT/metrics (default: SWERVE_METRICS_ADDRESS, else none; port 0 picks one). The leader record shows it.", valueName: "host:port"))
    var metricsAddress: String?

    @Option(help: ArgumentHelp("Redis replicas that must acknowledge a step's checkpoint (WAIT) before it acts on it, or auto: 1 when the master has replicas, else 0 (default: SWERVE_MIN_REPLICA_ACKS, else auto).", valueName: "n|auto"))
    var minReplicaAcks: String?

    @Option(help: "How long a step waits for those acknowledgements, in milliseconds; past it the step fails without acting (default: SWERVE_REPLICA_ACK_TIMEOUT_MS, else 250 or half the renew interval if less; under the renew interval).")
    var replicaAckTimeoutMs: Int?

    /// `--min-replica-acks` (nil: auto) and `--replica-ack-timeout-ms`, checked.
    func replicaAcks(renewMs: Int) throws -> (required: Int?, timeoutMs: Int) {
        let text = minReplicaAcks ?? ProcessInfo.processInfo.environment["SWERVE_MIN_REPLICA_ACKS"].flatMap { $0.isEmpty ? nil : $0 } ?? "auto"
        let required: Int?
        if text == "auto" {
            required = nil
        } else {
            guard let value = Int(text), (0...16).contains(value) else {
                throw ArgumentParser.ValidationError("--min-replica-acks (or SWERVE_MIN_REPLICA_ACKS): must be auto or a number from 0 to 16, got \"\(text)\"")
            }
            required = value
        }
        // The default stays well under the renew interval however short the lease is.
        let timeout = try replicaAckTimeoutMs ?? environmentInteger("SWERVE_REPLICA_ACK_TIMEOUT_MS") ?? max(1, min(250, renewMs / 2))
        guard timeout >= 1, timeout < renewMs else {
            throw ArgumentParser.ValidationError("--replica-ack-timeout-ms (or SWERVE_REPLICA_ACK_TIMEOUT_MS): must be from 1 to under the renew interval (\(renewMs) ms: renewals wait behind it), got \(timeout)")
        }
        return (required, timeout)
    }

    /// The flags, else their environment variables, else the defaults; every value checked.
    func timing() throws -> (ttl: Int, renew: Int?, retry: Int?, tick: Int) {
        let ttl = try leaseTTLMs ?? environmentInteger("SWERVE_LEASE_TTL_MS") ?? Int(ControllerConfiguration.defaultLeaseTTL.wholeMilliseconds)
        let renew = try leaseRenewMs ?? environmentInteger("SWERVE_LEASE_RENEW_MS")
        let retry = try leaseRetryMs ?? environmentInteger("SWERVE_LEASE_RETRY_MS")
        let tick = try tickMs ?? environmentInteger("SWERVE_TICK_MS") ?? 100
        guard ttl >= 300 else { throw ArgumentParser.ValidationError("--lease-ttl-ms (or SWERVE_LEASE_TTL_MS): must be ≥ 300, got \(ttl)") }
        if let renew, renew < 10 { throw ArgumentParser.ValidationError("--lease-renew-ms (or SWERVE_LEASE_RENEW_MS): must be ≥ 10, got \(renew)") }
        if let retry, retry < 10 { throw ArgumentParser.ValidationError("--lease-retry-ms (or SWERVE_LEASE_RETRY_MS): must be ≥ 10, got \(retry)") }
        guard tick >= 10 else { throw ArgumentParser.ValidationError("--tick-ms (or SWERVE_TICK_MS): must be ≥ 10, got \(tick)") }
        return (ttl, renew, retry, tick)
    }

    /// The renew interval in milliseconds: the one given, else the default for the TTL.
    func renewMs(_ timing: (ttl: Int, renew: Int?, retry: Int?, tick: Int)) -> Int {
        timing.renew ?? Int(ControllerConfiguration.defaultRenewInterval(ttl: .milliseconds(timing.ttl)).wholeMilliseconds)
    }

    func validate() throws {
        let timing = try timing()
        _ = try replicaAcks(renewMs: renewMs(timing))
        _ = try failpoints()
        _ = try SwerveCLI.metricsAddress(metricsAddress)
    }

    /// Failpoints armed through SWERVE_FAILPOINTS (tests only; none by default).
    func failpoints() throws -> Failpoints {
        do {
            return try Failpoints.parse(ProcessInfo.processInfo.environment[Failpoints.environmentVariable], known: ControllerFailpoint.names)
        } catch {
            throw ArgumentParser.ValidationError(error.message)
        }
    }

    func run() async throws {
        let logger = try processLogger("swerve.controller")
        let host = ProcessInfo.processInfo.hostName
        let pid = ProcessInfo.processInfo.processIdentifier
        let timing = try timing()
        var identity = ControllerIdentity(id: id ?? "\(host)-\(pid)", host: host, pid: pid)
        let metricsAt = try SwerveCLI.metricsAddress(metricsAddress)
        let metrics = metricsAt.map(\.description) ?? "none"
        let clusterName = try cluster.keys().cluster
        try exitIfDryRun("controller", "id \(identity.id), cluster \(clusterName), lease TTL \(timing.ttl) ms, metrics \(metrics)")
        var endpoint: MetricsEndpoint?
        if let metricsAt {
            endpoint = try await serveMetrics("controller", on: metricsAt, logger: logger,
                                              durationBuckets: [ControllerMetrics.reconcileDurationLabel: ControllerMetrics.reconcileDurationBuckets])
            identity.address = endpoint?.address
        }
        // Named in `CLIENT LIST` (`swerve-controller-CLUSTER-ID`), so that an operator sees
        // which connection is whose, also where clusters share a Redis.
        var redis = try cluster.redisConfiguration()
        let keys = try cluster.keys()
        let name = "\(keys.cluster)-\(identity.id)"
        redis.clientName = "swerve-controller-" + String(name.map { $0.isASCII && ($0.isLetter || $0.isNumber || "-_.:".contains($0)) ? $0 : "_" })
        var configuration = ControllerConfiguration(
            redis: redis, keys: keys, identity: identity,
            leaseTTL: .milliseconds(timing.ttl), tick: .milliseconds(timing.tick),
            failpoints: try failpoints())
        configuration.leaseRenewInterval = timing.renew.map { .milliseconds($0) }
        configuration.leaseRetryPeriod = timing.retry.map { .milliseconds($0) }
        let acks = try replicaAcks(renewMs: renewMs(timing))
        configuration.minReplicaAcks = acks.required
        configuration.replicaAckTimeout = .milliseconds(acks.timeoutMs)
        try await runUntilTerminated("controller") { [configuration, logger] in try await Controller.run(configuration, logger: logger) }
    }
}
