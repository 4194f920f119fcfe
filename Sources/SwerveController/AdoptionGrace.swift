import SwerveCore

/// How long a leader treats silence as "no news" after it (re)loaded the checkpoint, as a pure
/// value (`now` is passed in).
///
/// A leader loads the checkpoint when its term starts and again after a failed step — which is
/// what an outage of Redis looks like from the leader. Either way the keys that say a node or a
/// worker is alive may be missing for reasons that say nothing about them: a Redis restarted
/// from its append-only file drops every key whose TTL passed while it was down, and the
/// agents and workers that renew them are still in their reconnect backoff. So until
/// `deadline` (the node and heartbeat TTL plus the clients' longest reconnect backoff after
/// the load):
/// - a missing ready key on a replica adopted RUNNING that has not confirmed since is no news,
///   not a lost heartbeat;
/// - a node the checkpoint knew alive whose record is missing — or that is missing from the
///   `nodes` set itself — is no news: alive (its replicas stay), but not schedulable (its
///   resources are unknown), not gone. A failover to a replica that lacked the agent's last
///   registration drops it from the set as easily as its record: counting that as leaving
///   killed a replica in the chaos run.
/// A replica confirms by being seen ready once; a node by its record. An exit record is
/// always reported. A node that left the set on purpose (an agent removes itself on exit) is
/// therefore gone only once the grace ends; its workers' exit records say so sooner.
struct AdoptionGrace: Sendable, Equatable {
    private(set) var unconfirmed: Set<String>
    private(set) var unconfirmedNodes: Set<String>
    let deadline: ContinuousClock.Instant

    init(adopted: [String], nodes: [String] = [], now: ContinuousClock.Instant, grace: Duration) {
        unconfirmed = Set(adopted)
        unconfirmedNodes = Set(nodes)
        deadline = now + grace
    }

    /// What the reconciler should see for `tag`: the observation, or nil for "no news".
    mutating func filter(_ observation: ReplicaObservation, tag: String, now: ContinuousClock.Instant) -> ReplicaObservation? {
        if observation.endpoint != nil {
            unconfirmed.remove(tag)
            return observation
        }
        if unconfirmed.contains(tag), observation.exit == nil, now < deadline { return nil }
        return observation
    }

    /// The nodes still awaiting their record, during the grace (none after it): the ones to
    /// treat as no news even when the `nodes` set does not list them.
    func nodesAwaitingConfirmation(now: ContinuousClock.Instant) -> Set<String> {
        now < deadline ? unconfirmedNodes : []
    }

    /// What the reconciler should see for node `id` listed in the `nodes` set: `info` as read,
    /// or, for a node without a readable record, "no news" during the grace (alive, not
    /// schedulable) and gone after it.
    mutating func filter(node id: String, _ info: NodeInfo?, now: ContinuousClock.Instant) -> NodeInfo {
        if let info {
            unconfirmedNodes.remove(id)
            return info
        }
        if unconfirmedNodes.contains(id), now < deadline { return NodeInfo(id: id, total: .zero, alive: true, schedulable: false) }
        return NodeInfo(id: id, total: .zero, alive: false)
    }
}
