import Logging
import SwerveCore
import SwerveProtocol
import SwerveRedis

/// Keeps the router's view current: subscribes to the snapshot notices first, then reads both
/// snapshots; applies a routing notice's delta when it follows the held view (no read at
/// all); re-reads a snapshot when a notice names the next one, both when a notice shows a gap
/// (a skipped version or a new term: others may have been lost), both after any reconnect
/// (messages may have been missed), and both every `resync` as a safety net. The routing
/// snapshot is read with the deltas stored after it, in one transaction. Pub/sub is only a
/// hint: the keys are the truth. While Redis is away, the view stays as it was.
struct ViewFollower: Sendable {
    let keys: ClusterKeys
    let client: RedisClient
    let subscriberConfiguration: RedisConfiguration
    let state: ProxyState
    let resync: Duration
    let logger: Logger

    /// What the loop does next. Notices and reads go through one loop, in order: a delta is
    /// never applied while a read is in flight, so a read (which sees every delta whose
    /// notice came before it) never takes the view back past one.
    private enum Work: Sendable {
        /// Read one snapshot, or both (nil).
        case read(SnapshotNotice.Kind?)
        case notice(SnapshotNotice)
    }

    func run() async {
        // Deep enough for a burst of notices; when it overflows, the oldest go, and the next
        // notice shows the gap (a re-read).
        let (work, continuation) = AsyncStream.makeStream(of: Work.self, bufferingPolicy: .bufferingNewest(1024))
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: resync)
                    continuation.yield(.read(nil))
                }
                continuation.finish()
            }
            group.addTask {
                let subscriber = RedisSubscriber(configuration: subscriberConfiguration, logger: logger)
                try? await subscriber.subscribe(to: [keys.snapshots]) { subscription in
                    for await event in subscription {
                        switch event {
                        case .subscribed, .mayHaveMissedMessages:
                            continuation.yield(.read(nil))
                        case .message(let message):
                            guard let notice = try? DocumentCodec.decode(SnapshotNotice.self, from: message.payload, source: keys.snapshots) else {
                                continuation.yield(.read(nil)) // unreadable: re-read everything
                                continue
                            }
                            continuation.yield(.notice(notice))
                        case .disconnected:
                            break
                        }
                    }
                }
            }
            for await next in work {
                guard !Task.isCancelled else { break }
                switch next {
                case .read(let kind):
                    await read(kind)
                case .notice(let notice):
                    switch state.take(notice) {
                    case .ignored, .applied: break
                    case .reread(.snapshot(let kind)): await read(kind)
                    case .reread(.both):
                        logger.debug("a notice skipped a version; re-reading both snapshots", metadata: ["notice": "\(notice.kind) \(notice.epoch)/\(notice.version)"])
                        await read(nil)
                    }
                }
            }
            group.cancelAll()
        }
    }

    /// Reads one snapshot (or both, for nil) and offers it to the view.
    private func read(_ kind: SnapshotNotice.Kind?) async {
        do {
            let wanted: [SnapshotNotice.Kind] = kind.map { [$0] } ?? [.configs, .routing]
            var commands: [RedisCommand] = []
            for kind in wanted {
                switch kind {
                case .configs: commands.append(RedisCommand("GET", keys.configsSnapshot))
                case .routing: commands += [RedisCommand("GET", keys.routingSnapshot), RedisCommand("LRANGE", keys.routingDeltas, 0, -1)]
                }
            }
            let replies = try await client.transaction(commands)
            var next = 0
            for kind in wanted {
                let reply = replies[next]
                let deltas = kind == .routing ? replies[next + 1] : nil
                next += kind == .routing ? 2 : 1
                guard let bytes = reply.bytes else { continue }
                let acceptance: RouterView.Acceptance
                let position: RouterView.SnapshotPosition
                switch kind {
                case .configs:
                    let snapshot = try DocumentCodec.decode(Snapshot<BackendConfigsView>.self, from: bytes, source: keys.configsSnapshot)
                    acceptance = state.updateView { $0.accept(configs: snapshot) }
                    position = RouterView.SnapshotPosition(epoch: snapshot.epoch, version: snapshot.view.version)
                case .routing:
                    let whole = try DocumentCodec.decode(Snapshot<RoutingView>.self, from: bytes, source: keys.routingSnapshot)
                    // The deltas up to the first that cannot be read (a newer leader's format?):
                    // the view follows as far as it can rather than not at all.
                    var notices: [SnapshotNotice] = []
                    var readable = true
                    for reply in deltas?.array ?? [] {
                        guard let notice = try? DocumentCodec.decode(SnapshotNotice.self, from: reply.bytes ?? [], source: keys.routingDeltas) else {
                            readable = false
                            break
                        }
                        notices.append(notice)
                    }
                    let (snapshot, chained) = whole.following(notices)
                    let complete = chained && readable
                    if !complete {
                        logger.warning("a routing delta does not follow the view before it; following the view up to it (the next notice or re-read heals it)",
                                       metadata: ["snapshot": "\(whole.epoch)/\(whole.view.version)", "reached": "\(snapshot.view.version)"])
                    }
                    acceptance = state.updateView { $0.accept(routing: snapshot) }
                    position = RouterView.SnapshotPosition(epoch: snapshot.epoch, version: snapshot.view.version)
                }
                if case .wentBack(let held) = acceptance {
                    logger.warning("the \(kind) snapshot in Redis went back: Redis lost writes (a failover or a restore); following it",
                                   metadata: ["held": "\(held)", "stored": "\(position)"])
                }
            }
        } catch {
            logger.warning("cannot read the snapshots; serving from the last view", metadata: ["error": "\(error)"])
        }
    }
}
