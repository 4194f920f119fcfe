import Foundation
public import Logging
import NIOCore
import NIOHTTP1
import SwerveClient
import SwerveCore
import SwerveErrors
public import SwerveProtocol
public import SwerveRedis
import Synchronization

/// What the dashboard knows, and who is watching: it reads the cluster's keys (never writes
/// one), builds a ``DashboardSnapshot`` whenever something may have changed, and pushes it and
/// every new event to the pages following `/api/stream` (server-sent events).
///
/// What makes it look again: a snapshot notice or a leadership change on their channels, a new
/// event in the stream, a page connecting, and every ``period`` while a page watches (node
/// heartbeats and lease expiry publish nothing). Looks are coalesced: at most one per
/// ``minimumGap``; with no page watching it reads nothing but the event stream it follows.
///
/// Guarantees: a page gets the latest snapshot and the last ``backlog`` events as soon as it
/// connects, then every change once; a page that does not keep up (its connection stops
/// taking writes) is disconnected rather than buffered for — its `EventSource` reconnects and
/// starts again from a fresh snapshot.
public final class DashboardFeed: Sendable {
    public static let backlog = 200
    public static let period: Duration = .seconds(2)
    public static let minimumGap: Duration = .milliseconds(100)

    let keys: ClusterKeys
    private let redis: RedisConfiguration
    private let reads: RedisClient
    private let follower: RedisClient
    private let logger: Logger
    private let wakes: AsyncStream<Void>
    private let wake: AsyncStream<Void>.Continuation

    private struct State {
        /// The last snapshot built, with its instant zeroed (for telling whether anything changed).
        var last: DashboardSnapshot?
        var snapshot: [UInt8]?
        var snapshotAt: ContinuousClock.Instant?
        var events: [DashboardEvent] = []
        var elections = ElectionHistory()
        var traffic = TrafficWindow()
        /// Traffic report keys found malformed (each warned about once until it reads well).
        var malformedReports: Set<String> = []
        /// Set while looks fail (a Redis outage is logged once, not at every look).
        var readFailing = false
        var streams: [ObjectIdentifier: any Channel] = [:]
    }
    private let state = Mutex(State())

    public init(keys: ClusterKeys, redis: RedisConfiguration, logger: Logger) {
        self.keys = keys
        self.redis = redis
        self.logger = logger
        reads = RedisClient(configuration: redis, logger: logger)
        follower = RedisClient(configuration: redis, logger: logger)
        (wakes, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Pages following the stream now.
    public var watching: Int { state.withLock { $0.streams.count } }

    /// Runs until cancelled: follows the events, the notices, and looks when woken.
    public func run() async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.followEvents() }
            group.addTask { await self.followNotices() }
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: Self.period)
                    if self.watching > 0 { self.wake.yield() }
                }
            }
            group.addTask {
                for await _ in self.wakes {
                    guard !Task.isCancelled else { return }
                    // Nobody watching: nothing to push (`/api/state` looks for itself).
                    guard self.watching > 0 else { continue }
                    await self.look()
                    try? await Task.sleep(for: Self.minimumGap)
                }
            }
            await group.waitForAll()
        }
    }

    public func close() {
        wake.finish()
        reads.close()
        follower.close()
    }

    /// The latest snapshot as JSON, looking first when the last look is older than ``period``.
    public func currentSnapshot() async -> [UInt8]? {
        let fresh = state.withLock { state in
            state.snapshotAt.map { ContinuousClock.now - $0 < Self.period } ?? false ? state.snapshot : nil
        }
        if let fresh { return fresh }
        await look()
        return state.withLock { $0.snapshot }
    }

    // MARK: Pages following the stream

    /// Adds a page's connection: it gets what there is now at once, then every change.
    func startStreaming(to channel: any Channel) {
        let (snapshot, events) = state.withLock { state in
            state.streams[ObjectIdentifier(channel)] = channel
            return (state.snapshot, state.events)
        }
        var first = ServerSentEvents.retry(milliseconds: 2000)
        if let snapshot { first += ServerSentEvents.message(event: "state", data: snapshot) }
        if !events.isEmpty { first += ServerSentEvents.message(event: "events", data: DocumentCodec.encodeValue(events)) }
        send(first, to: [channel])
        wake.yield()
    }

    func stopStreaming(to channel: any Channel) {
        _ = state.withLock { $0.streams.removeValue(forKey: ObjectIdentifier(channel)) }
    }

    private func broadcast(_ bytes: [UInt8]) {
        send(bytes, to: state.withLock { Array($0.streams.values) })
    }

    private func send(_ bytes: [UInt8], to channels: [any Channel]) {
        for channel in channels {
            guard channel.isWritable else {
                // It stopped reading: dropped, not buffered for. Its page reconnects.
                stopStreaming(to: channel)
                channel.close(promise: nil)
                continue
            }
            let buffer = channel.allocator.buffer(bytes: bytes)
            channel.writeAndFlush(HTTPServerResponsePart.body(.byteBuffer(buffer)), promise: nil)
        }
    }

    /// A comment line every page ignores: keeps idle connections (and proxies) from timing out.
    func keepAlive() {
        broadcast(ServerSentEvents.comment("keep-alive"))
    }

    // MARK: Reading the cluster

    private func look() async {
        let client = ClusterClient(keys: keys, client: reads, logger: logger)
        do {
            async let leader = client.leader()
            async let status = client.status()
            async let checkpoint = client.checkpoint()
            async let nodes = client.nodes()
            async let time = reads.send("TIME")
            async let reports = trafficReports()
            let now = Timestamp(milliseconds: try await time.timeMilliseconds ?? Int64(Date().timeIntervalSince1970 * 1000))
            let taken = try await reports
            let (elections, traffic) = state.withLock { ($0.elections.elections, $0.traffic.take(taken)) }
            let snapshot = DashboardSnapshot.build(.init(cluster: keys.cluster, now: now, leader: try await leader, status: try await status,
                                                         state: try await checkpoint, nodes: try await nodes, elections: elections, traffic: traffic))
            var timeless = snapshot
            timeless.at = 0
            let bytes = DocumentCodec.encodeValue(snapshot)
            let (changed, recovered) = state.withLock { state -> (Bool, Bool) in
                let recovered = state.readFailing
                state.readFailing = false
                state.snapshotAt = .now
                // The instant alone changing is no news to a page.
                guard state.last != timeless else { return (false, recovered) }
                state.last = timeless
                state.snapshot = bytes
                return (true, recovered)
            }
            if recovered { logger.info("reading the cluster again") }
            if changed { broadcast(ServerSentEvents.message(event: "state", data: bytes)) }
        } catch {
            if !state.withLock({ state in defer { state.readFailing = true }; return state.readFailing }) {
                logger.warning("cannot read the cluster; pages keep the last state until it can", metadata: ["error": "\(error)"])
            }
        }
    }

    /// The traffic reports of the routers reporting now (at most 1,000; a malformed one is
    /// skipped with a warning: a router's report must not hide the cluster).
    private func trafficReports() async throws -> [RouterTrafficReport] {
        // The ids of the last hour (routers drop older ones), latest expiry first: an expired
        // report's key is gone and reads as nothing, so no clock is compared here, and this read
        // goes out beside the look's others rather than after its TIME.
        let ids = try await reads.send("ZREVRANGEBYSCORE", keys.routerTraffics, "+inf", "-inf", "LIMIT", 0, 1000).array?.compactMap(\.string) ?? []
        guard !ids.isEmpty else { return [] }
        let values = try await reads.send(RedisCommand("MGET", arguments: ids.map(keys.routerTraffic))).array ?? []
        var reports: [RouterTrafficReport] = []
        for (id, value) in zip(ids, values) {
            guard let bytes = value.bytes else { continue }
            let key = keys.routerTraffic(id)
            do {
                let report = try DocumentCodec.decode(RouterTrafficReport.self, from: bytes, source: key)
                if let problem = report.problems { throw ProtocolError(.malformed, "\(key): \(problem)") }
                reports.append(report)
                _ = state.withLock { $0.malformedReports.remove(key) }
            } catch {
                let first = state.withLock { state -> Bool in
                    if state.malformedReports.count >= 1000 { state.malformedReports.removeAll() } // bounded, whatever routers write
                    return state.malformedReports.insert(key).inserted
                }
                if first {
                    logger.warning("skipping a router's traffic report", metadata: ["key": "\(key)", "error": "\(error)"])
                }
            }
        }
        return reports
    }

    /// Follows the events stream: the whole stream once for its elections, then each new entry.
    private func followEvents() async {
        let client = ClusterClient(keys: keys, client: follower, logger: logger)
        var after: String?
        var failing = false
        while !Task.isCancelled {
            do {
                if after == nil {
                    let recent = try await client.recentEvents(count: ClusterKeys.eventsLimit)
                    state.withLock { state in
                        for entry in recent { state.elections.record(entry) }
                        state.events = recent.suffix(Self.backlog).map(DashboardEvent.init)
                    }
                    after = recent.last?.id ?? "0"
                    wake.yield()
                }
                let entries = try await client.events(after: after ?? "0", block: .seconds(5))
                if failing { logger.info("following the events stream again") }
                failing = false
                guard let last = entries.last else {
                    keepAlive()
                    continue
                }
                after = last.id
                let events = entries.map(DashboardEvent.init)
                state.withLock { state in
                    for entry in entries { state.elections.record(entry) }
                    state.events = Array((state.events + events).suffix(Self.backlog))
                }
                broadcast(ServerSentEvents.message(event: "events", data: DocumentCodec.encodeValue(events)))
                wake.yield()
            } catch {
                if !failing { logger.warning("cannot read the events stream; trying again every second", metadata: ["error": "\(error)"]) }
                failing = true
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }

    /// Looks again on every snapshot notice and leadership change.
    private func followNotices() async {
        while !Task.isCancelled {
            let subscriber = RedisSubscriber(configuration: redis, logger: logger)
            do {
                try await subscriber.subscribe(to: [keys.snapshots, keys.leaderEvents]) { subscription in
                    for await event in subscription {
                        guard !Task.isCancelled else { return }
                        switch event {
                        case .subscribed, .message, .mayHaveMissedMessages: wake.yield()
                        case .disconnected: break
                        }
                    }
                }
            } catch {
                logger.warning("cannot follow the notices; trying again in a second", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: .seconds(1))
        }
    }

}
