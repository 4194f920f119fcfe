import CoreMetrics
import Synchronization
public import Logging
public import SwerveCore
import SwerveErrors
public import SwerveProtocol
public import SwerveRedis
public import SwerveSystem

/// What `swerve controller` needs: a `Sendable` value with defaults.
public struct ControllerConfiguration: Sendable {
    public var redis: RedisConfiguration
    public var keys: ClusterKeys
    public var identity: ControllerIdentity
    public var leaseTTL: Duration
    /// How often the leader renews (nil: ``defaultRenewInterval(ttl:)``) and a follower retries
    /// (nil: 20 ms, or ttl/6 if shorter).
    public var leaseRenewInterval: Duration?
    public var leaseRetryPeriod: Duration?
    /// The control loop runs at least this often, and at once on any wake-up.
    public var tick: Duration
    public var settings: ReconcilerSettings
    /// After every load of the checkpoint (taking over, or after a failed step: what an outage
    /// of Redis looks like), how long adopted running replicas and live nodes get to confirm
    /// their keys before a missing one counts as lost. Default 5 s: the node and heartbeat TTL
    /// (3 s) plus the clients' longest reconnect backoff (2 s), so an agent or worker that was
    /// itself waiting out its backoff when Redis came back has rewritten its key by then.
    public var adoptionGrace: Duration
    /// How many Redis replicas must acknowledge a step's checkpoint (`WAIT`) before the step
    /// acts on it; nil: 1 when the master has replicas at the time of a load, else 0.
    public var minReplicaAcks: Int?
    /// How long a step waits for them; past it the step fails without acting. Keep it short:
    /// the step's connection waits with it (the lease is renewed on another).
    public var replicaAckTimeout: Duration = .milliseconds(250)
    /// Inert unless a test armed one (see ``ControllerFailpoint``).
    public var failpoints: Failpoints
    public var metrics = ControllerMetrics()

    /// The lease TTL when none is given: it bounds a frozen or cut-off leader's failover (a dead
    /// one's is taken over at once); see ``LeaseStateMachine/Timing/defaults(ttl:)``.
    public static let defaultLeaseTTL: Duration = .milliseconds(1000)

    /// How often a leader renews a lease of `ttl` when not told: ttl/5.
    public static func defaultRenewInterval(ttl: Duration) -> Duration {
        LeaseStateMachine.Timing.defaults(ttl: ttl).renewInterval
    }

    public init(redis: RedisConfiguration, keys: ClusterKeys, identity: ControllerIdentity, leaseTTL: Duration = ControllerConfiguration.defaultLeaseTTL,
                tick: Duration = .milliseconds(100), settings: ReconcilerSettings = ReconcilerSettings(), adoptionGrace: Duration = .seconds(5),
                failpoints: Failpoints = .none) {
        self.adoptionGrace = adoptionGrace
        self.failpoints = failpoints
        self.redis = redis
        self.keys = keys
        self.identity = identity
        self.leaseTTL = leaseTTL
        self.tick = tick
        self.settings = settings
    }
}

/// `swerve controller`: contends for the lease; while it leads, runs the control loop
/// (``ControllerTerm``). Runs until its task is cancelled, then releases the lease.
public enum Controller {
    public static func run(_ configuration: ControllerConfiguration, logger: Logger) async throws {
        let client = RedisClient(configuration: configuration.redis, logger: logger)
        defer { client.close() }
        // The lease on a connection of its own: a step's writes never delay a renewal.
        let leaseClient = RedisClient(configuration: configuration.redis, logger: logger)
        defer { leaseClient.close() }
        let elector = try LeaseElector(keys: configuration.keys, client: leaseClient, writeClient: client, identity: configuration.identity,
                                       ttl: configuration.leaseTTL, renewInterval: configuration.leaseRenewInterval,
                                       retryPeriod: configuration.leaseRetryPeriod, metrics: configuration.metrics, logger: logger)
        let memory = ClusterMemory()
        await elector.run { scope in
            await lead(scope, configuration: configuration, client: client, memory: memory, logger: logger)
        }
    }

    static func lead(_ scope: LeadershipScope, configuration: ControllerConfiguration, client: RedisClient, memory: ClusterMemory,
                     logger baseLogger: Logger) async {
        let logger = {
            var logger = baseLogger
            logger[metadataKey: "epoch"] = "\(scope.epoch)"
            return logger
        }()
        var term = ControllerTerm(scope: scope, keys: configuration.keys, client: client, settings: configuration.settings, logger: logger,
                                  confirmationGrace: configuration.adoptionGrace, failpoints: configuration.failpoints,
                                  metrics: configuration.metrics)
        term.replicaAcknowledgement = ReplicaAcknowledgement(configured: configuration.minReplicaAcks, timeout: configuration.replicaAckTimeout)
        term.memory = memory
        do {
            // Refusing to lead: return, so the lease is released (a newer controller that can
            // read the checkpoint may take over) and the checkpoint stays as it is.
            guard try await term.load() else { return }
        } catch {
            logger.error("cannot load the checkpoint", metadata: ["error": "\(error)"])
            return
        }

        let (wakes, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: configuration.tick)
                    continuation.yield()
                }
                continuation.finish()
            }
            group.addTask {
                let subscriber = RedisSubscriber(configuration: configuration.redis, logger: logger)
                try? await subscriber.subscribe(to: [configuration.keys.wake]) { subscription in
                    for await _ in subscription { continuation.yield() }
                }
            }
            var seed = UInt64.random(in: 0...UInt64.max)
            continuation.yield()
            // Set after a failed step: the step may have written its checkpoint and part of its
            // actions, so the state in memory may be behind Redis. No step runs on it: the
            // next wake-ups retry the reload, and stepping resumes only once one succeeded.
            var reloadNeeded = false
            var reloadFailures = 0
            for await _ in wakes {
                guard !Task.isCancelled else { break }
                if reloadNeeded {
                    do {
                        guard try await term.load(afterFailedStep: true) else { break }
                        reloadNeeded = false
                        logger.info("reloaded the checkpoint after a failed step", metadata: ["failedReloads": "\(reloadFailures)"])
                        reloadFailures = 0
                    } catch let error as LeaseError {
                        logger.warning("leadership lost while reloading", metadata: ["error": "\(error.message)"])
                        break
                    } catch {
                        // Redis is still away: said once, then retried on every wake-up.
                        if reloadFailures == 0 { logger.error("cannot reload the checkpoint; not stepping until it can", metadata: ["error": "\(error)"]) }
                        reloadFailures += 1
                        continue
                    }
                }
                seed &+= 1
                do {
                    try await term.step(randomSeed: seed)
                } catch let error as LeaseError {
                    logger.warning("leadership lost mid-step", metadata: ["error": "\(error.message)"])
                    break
                } catch {
                    logger.error("control loop step failed; reloading the checkpoint before the next step", metadata: ["error": "\(error)"])
                    configuration.metrics.stepFailures.increment()
                    reloadNeeded = true
                }
            }
            group.cancelAll()
        }
    }
}

/// What a controller process remembers across its terms: whether it ever loaded or wrote this
/// cluster's checkpoint. A controller that did and then finds none knows Redis lost its data,
/// whatever else Redis holds by then.
final class ClusterMemory: Sendable {
    private let sawCheckpoint = Atomic<Bool>(false)

    var checkpointSeen: Bool { sawCheckpoint.load(ordering: .relaxed) }

    func checkpointSeen(_ seen: Bool = true) { if seen { sawCheckpoint.store(true, ordering: .relaxed) } }
}
