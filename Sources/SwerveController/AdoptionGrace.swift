import SwerveCore

/// How long a leader treats silence as "no news" after it (re)loaded the checkpoint, as a pure
/// value (`now` is passed in).
///
/// A leader loads the checkpoint when its term starts and again after a failed step — which is
/// what an outage of Redis looks like from the leader. Either way the keys that say a node or a
/// worker is alive may be missing for reasons that say nothing about them: a Redis restarted
/// from its append-only file, or a replica promoted by a failover, drops every key whose TTL
/// passed while it was away, and the agents and workers that renew them are still in their
/// reconnect backoff. So until `deadline` (the node and heartbeat TTL plus the clients' longest
/// reconnect backoff after the load):
/// - a missing ready key on a replica adopted RUNNING is no news, not a lost heartbeat;
/// - a node the checkpoint knew alive whose record is missing — or that is missing from the
///   `nodes` set itself — is no news: alive (its replicas stay), but not schedulable (its
///   resources are unknown), not gone. A failover to a replica that lacked the agent's last
///   registration drops it from the set as easily as its record.
///
/// Seeing a key during the grace does not end it for that replica or node: a key read just
/// after a failover may be one written before the outage whose TTL has not yet run out, and it
/// expires moments later while its owner is still reconnecting (the chaos run killed replicas
/// that way). Keys left from before the load expire within their TTL, before the grace ends;
/// once it has, every missing key is news. An exit record is always reported at once, so a
/// worker that dies during the grace is replaced then; a node that left the set on purpose (an
/// agent removes itself on exit) is gone once the grace ends, and its workers' exit records say
/// so sooner.
struct AdoptionGrace: Sendable, Equatable {
    /// Replicas RUNNING at the load.
    let adopted: Set<String>
    /// Nodes alive at the load.
    let adoptedNodes: Set<String>
    let deadline: ContinuousClock.Instant

    init(adopted: [String], nodes: [String] = [], now: ContinuousClock.Instant, grace: Duration) {
        self.adopted = Set(adopted)
        adoptedNodes = Set(nodes)
        deadline = now + grace
    }

    /// Whether the grace still runs.
    func inGrace(now: ContinuousClock.Instant) -> Bool { now < deadline }

    /// What the reconciler should see for `tag`: the observation, or nil for "no news".
    func filter(_ observation: ReplicaObservation, tag: String, now: ContinuousClock.Instant) -> ReplicaObservation? {
        if observation.endpoint == nil, observation.exit == nil, now < deadline, adopted.contains(tag) { return nil }
        return observation
    }

    /// The nodes to treat as no news even when the `nodes` set does not list them: the ones
    /// alive at the load, during the grace (none after it).
    func nodesInGrace(now: ContinuousClock.Instant) -> Set<String> {
        now < deadline ? adoptedNodes : []
    }

    /// What the reconciler should see for node `id` listed in the `nodes` set: `info` as read,
    /// or, for a node without a readable record, "no news" during the grace (alive, not
    /// schedulable) and gone after it.
    func filter(node id: String, _ info: NodeInfo?, now: ContinuousClock.Instant) -> NodeInfo {
        if let info { return info }
        if now < deadline, adoptedNodes.contains(id) { return NodeInfo(id: id, total: .zero, alive: true, schedulable: false) }
        return NodeInfo(id: id, total: .zero, alive: false)
    }
}
