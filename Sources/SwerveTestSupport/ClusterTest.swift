public import Foundation
import Glibc
public import Logging
import SwerveClient
public import SwerveCore
public import SwerveProtocol
public import SwerveRedis

/// What a test suite that runs a cluster of real processes has, and the helpers they share:
/// start controllers and node agents, submit requests as clients do, await goals and
/// elections (subscribed first, then the state read: nothing is missed), read the routing
/// snapshot.
public protocol ClusterTest {
    var url: String { get }
    var keys: ClusterKeys { get }
    var client: RedisClient { get }
    var logger: Logger { get }
}

extension ClusterTest {
    /// A controller with a 2 s lease and a follower retry of 100 ms unless `environment` says
    /// otherwise: the whole suite's debug processes starve the 2-core machine, the default 1 s
    /// lease (trusted 0.8 s) is then lost now and then (a test about something else sees a
    /// leader change), and dozens of followers polling every 20 ms add to the starving.
    public func controller(_ id: String, environment: [String: String] = [:]) throws -> SwerveProcess {
        try SwerveProcess(["controller", "--redis", url, "--cluster", keys.cluster, "--id", id],
                          environment: ["SWERVE_LOG_LEVEL": "warning", "SWERVE_LEASE_TTL_MS": "2000", "SWERVE_LEASE_RETRY_MS": "100"]
                            .merging(environment) { $1 })
    }

    /// A node agent whose workers bind and advertise `address`.
    public func node(_ id: String = "n1", cpu: Int = 8, address: String = "127.0.0.1") throws -> SwerveProcess {
        try SwerveProcess(["node", "--redis", url, "--cluster", keys.cluster, "--id", id, "--cpu", "\(cpu)", "--address", address],
                          environment: ["SWERVE_LOG_LEVEL": "warning"])
    }

    /// Appends a request as a client does.
    public func append(_ operation: Request.Operation, goal: String) async throws {
        _ = try await client.pipeline(ClusterClient.appendCommands(RequestEntry(goal: goal, operation: operation), keys: keys))[0].throwingServerError(for: "XADD")
    }

    /// Returns once `goal` settled: subscribed first, then the goal key read, then messages.
    public func outcome(of goal: String) async throws -> GoalOutcome {
        let subscriber = RedisSubscriber(configuration: client.configuration, logger: logger)
        return try await subscriber.subscribe(to: [keys.goals]) { subscription in
            var iterator = subscription.makeAsyncIterator()
            guard await iterator.next() == .subscribed else { throw TestFailure("could not subscribe to \(keys.goals)") }
            if let bytes = try await client.send("GET", keys.goal(goal)).bytes {
                return try DocumentCodec.decode(GoalOutcomeDocument.self, from: bytes, source: keys.goal(goal)).outcome
            }
            while let event = await iterator.next() {
                if case .message(let message) = event, let outcome = try? DocumentCodec.decode(GoalOutcomeDocument.self, from: message.payload, source: keys.goals).outcome, outcome.goal == goal {
                    return outcome
                }
            }
            throw TestFailure("no outcome for \(goal)")
        }
    }

    public func request(_ operation: Request.Operation, goal: String) async throws -> GoalOutcome {
        try await append(operation, goal: goal)
        return try await outcome(of: goal)
    }

    /// The stored checkpoint (header and parts, read as `swerve get` reads them).
    public func checkpoint() async throws -> BackendState {
        try await ClusterClient(keys: keys, client: client, logger: logger).checkpoint()
    }

    /// The routed replicas of `backend` in the stored routing view: tag → address.
    public func routedReplicas(_ backend: String = "api") async throws -> [String: String] {
        var replicas: [String: String] = [:]
        for replica in try await routed(backend) { replicas[replica.tag] = replica.address.description }
        return replicas
    }

    /// The routed replicas of `backend`, as routers see them: the stored routing snapshot and
    /// the deltas after it.
    public func routed(_ backend: String = "api") async throws -> [RoutedReplica] {
        try await ClusterClient.routingSnapshot(client: client, keys: keys)?.view.backends[backend] ?? []
    }

    /// The worker pid in `tag`'s ready key, if it has one.
    public func pid(_ tag: String) async throws -> Int32? {
        guard let bytes = try await client.send("GET", keys.ready(tag)).bytes else { return nil }
        return try DocumentCodec.decode(ReadyRecord.self, from: bytes, source: keys.ready(tag)).pid
    }

    /// Returns once `id` was elected (subscribed before `body` runs).
    public func awaitLeader(_ id: String, after body: () async throws -> Void = {}) async throws {
        let subscriber = RedisSubscriber(configuration: client.configuration, logger: logger)
        try await subscriber.subscribe(to: [keys.leaderEvents]) { subscription in
            var iterator = subscription.makeAsyncIterator()
            _ = await iterator.next()
            try await body()
            if let bytes = try await client.send("GET", keys.leader).bytes,
               (try? DocumentCodec.decode(LeaderRecord.self, from: bytes, source: keys.leader))?.id == id { return }
            while let event = await iterator.next() {
                if case .message(let message) = event, let announced = try? DocumentCodec.decode(LeaderEvent.self, from: message.payload, source: keys.leaderEvents),
                   announced.event == .elected, announced.id == id { return }
            }
        }
    }

    /// Waits until every node in `ids` has registered (its record exists): a test that spreads
    /// replicas over several nodes must not create them while one is still starting.
    public func awaitRegistered(_ ids: String...) async throws {
        let deadline = ContinuousClock.now + .seconds(20)
        while try await client.send(RedisCommand("EXISTS", arguments: ids.map(keys.node))).integer != Int64(ids.count) {
            guard ContinuousClock.now < deadline else { throw TestFailure("nodes \(ids) did not all register") }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    /// Returns once the router listening on `listen` answers `path` with 200 (10 s at most).
    public func awaitServing(_ listen: String, path: String = "/api") async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while (try? await httpRequest(listen, path: path))?.status != 200 {
            guard ContinuousClock.now < deadline else { throw TestFailure("the router on \(listen) did not serve \(path) within 10 s") }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// The current leader's id, if any controller leads.
    public func leaderID() async throws -> String? {
        guard let bytes = try await client.send("GET", keys.leader).bytes else { return nil }
        return try DocumentCodec.decode(LeaderRecord.self, from: bytes, source: keys.leader).id
    }
}
