import SwerveCore

/// The grace a new leader gives the replicas it adopted RUNNING from the checkpoint, as a pure
/// value (`now` is passed in).
///
/// Until `deadline`, a missing ready key on an adopted replica that has not confirmed yet is
/// "no news" rather than a lost heartbeat: a new leader never drops replicas from the routing
/// view merely because it has not heard from them yet (e.g. after Redis lost their keys;
/// workers re-write them every second). A replica confirms by being seen ready once. Explicit
/// evidence — an exit record — is always reported.
struct AdoptionGrace: Sendable, Equatable {
    private(set) var unconfirmed: Set<String>
    let deadline: ContinuousClock.Instant

    init(adopted: [String], now: ContinuousClock.Instant, grace: Duration) {
        unconfirmed = Set(adopted)
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
}
