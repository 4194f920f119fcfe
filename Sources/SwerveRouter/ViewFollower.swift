import Logging
import SwerveCore
import SwerveProtocol
import SwerveRedis

/// Keeps the router's view current: subscribes to the snapshot notices first, then reads both
/// snapshots; re-reads a snapshot when a notice names the next one, both when a notice shows
/// a gap (a skipped version or a new term: others may have been lost), both after any
/// reconnect (messages may have been missed), and both every `resync` as a safety net.
/// Pub/sub is only a hint: the snapshot keys are the truth. While Redis is away, the view
/// stays as it was.
struct ViewFollower: Sendable {
    let keys: ClusterKeys
    let client: RedisClient
    let subscriberConfiguration: RedisConfiguration
    let state: ProxyState
    let resync: Duration
    let logger: Logger

    func run() async {
        let (wakes, continuation) = AsyncStream.makeStream(of: SnapshotNotice.Kind?.self, bufferingPolicy: .bufferingNewest(16))
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: resync)
                    continuation.yield(nil)
                }
                continuation.finish()
            }
            group.addTask {
                let subscriber = RedisSubscriber(configuration: subscriberConfiguration, logger: logger)
                try? await subscriber.subscribe(to: [keys.snapshots]) { subscription in
                    for await event in subscription {
                        switch event {
                        case .subscribed, .mayHaveMissedMessages:
                            continuation.yield(nil)
                        case .message(let message):
                            guard let notice = try? DocumentCodec.decode(SnapshotNotice.self, from: message.payload, source: keys.snapshots) else {
                                continuation.yield(nil) // unreadable: re-read everything
                                continue
                            }
                            switch state.currentView.reread(for: notice) {
                            case nil: break
                            case .snapshot(let kind): continuation.yield(kind)
                            case .both:
                                logger.debug("a notice skipped a version; re-reading both snapshots", metadata: ["notice": "\(notice.kind) \(notice.epoch)/\(notice.version)"])
                                continuation.yield(nil)
                            }
                        case .disconnected:
                            break
                        }
                    }
                }
            }
            for await kind in wakes {
                guard !Task.isCancelled else { break }
                await read(kind)
            }
            group.cancelAll()
        }
    }

    /// Reads one snapshot (or both, for nil) and offers it to the view.
    private func read(_ kind: SnapshotNotice.Kind?) async {
        do {
            let wanted: [SnapshotNotice.Kind] = kind.map { [$0] } ?? [.configs, .routing]
            let replies = try await client.pipeline(wanted.map { RedisCommand("GET", $0 == .configs ? keys.configsSnapshot : keys.routingSnapshot) })
            for (kind, reply) in zip(wanted, replies) {
                guard let bytes = reply.bytes else { continue }
                let acceptance: RouterView.Acceptance
                let position: RouterView.SnapshotPosition
                switch kind {
                case .configs:
                    let snapshot = try DocumentCodec.decode(Snapshot<BackendConfigsView>.self, from: bytes, source: keys.configsSnapshot)
                    acceptance = state.updateView { $0.accept(configs: snapshot) }
                    position = RouterView.SnapshotPosition(epoch: snapshot.epoch, version: snapshot.view.version)
                case .routing:
                    let snapshot = try DocumentCodec.decode(Snapshot<RoutingView>.self, from: bytes, source: keys.routingSnapshot)
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
