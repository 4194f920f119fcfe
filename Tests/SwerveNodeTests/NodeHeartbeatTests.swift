@testable import SwerveNode
import Testing

@Suite struct NodeHeartbeatRules {
    let t0 = ContinuousClock.now

    @Test func theFirstHeartbeatRegistersThenMostOnlyPushTheLease() {
        var heartbeat = NodeHeartbeat(ttl: .seconds(3), renewalInterval: .seconds(20))
        #expect(heartbeat.isDue(now: t0))
        #expect(heartbeat.kind(now: t0) == .register)
        heartbeat.attempted(at: t0)
        heartbeat.succeeded(.register, at: t0, redisTimeMs: 10_500, wallClock: 10_000)
        #expect(!heartbeat.isDue(now: t0 + .milliseconds(999)))
        #expect(heartbeat.isDue(now: t0 + .seconds(1)))
        #expect(heartbeat.kind(now: t0 + .seconds(1)) == .beat)
        #expect(heartbeat.leaseDeadline(wallClock: 11_000) == 14_500, "on Redis's clock: 500 ms ahead of this host's")
        heartbeat.attempted(at: t0 + .seconds(1))
        heartbeat.succeeded(.beat, at: t0 + .seconds(1))
        #expect(heartbeat.kind(now: t0 + .seconds(2)) == .beat)
    }

    @Test func theRecordAndClaimAreRenewedEveryRenewalInterval() {
        var heartbeat = NodeHeartbeat(ttl: .seconds(3), renewalInterval: .seconds(20))
        heartbeat.succeeded(.register, at: t0)
        var now = t0
        while now - t0 < .seconds(19) {
            now += .seconds(1)
            #expect(heartbeat.kind(now: now) == .beat)
            heartbeat.succeeded(.beat, at: now)
        }
        now += .seconds(1)
        #expect(heartbeat.kind(now: now) == .renew)
        heartbeat.succeeded(.renew, at: now)
        #expect(heartbeat.kind(now: now + .seconds(1)) == .beat)
    }

    @Test func aFailedLateOrLostHeartbeatRegistersInFullNext() {
        var heartbeat = NodeHeartbeat(ttl: .seconds(3), renewalInterval: .seconds(20))
        heartbeat.succeeded(.register, at: t0)
        #expect(heartbeat.kind(now: t0 + .milliseconds(1_499)) == .beat)
        #expect(heartbeat.kind(now: t0 + .milliseconds(1_500)) == .register, "late: the lease may have run out meanwhile")
        heartbeat.succeeded(.beat, at: t0 + .seconds(1))
        heartbeat.registerNext()
        #expect(heartbeat.kind(now: t0 + .seconds(2)) == .register)
        heartbeat.attempted(at: t0 + .seconds(2))
        #expect(!heartbeat.isDue(now: t0 + .milliseconds(2_199)))
        #expect(heartbeat.isDue(now: t0 + .milliseconds(2_200)), "a registration owed is retried sooner than a beat")
        heartbeat.succeeded(.register, at: t0 + .milliseconds(2_200))
        #expect(heartbeat.kind(now: t0 + .seconds(3)) == .beat)
    }

    /// What Redis answered says whether it lost the node's keys; losing them means registering
    /// again next, whatever else is due.
    @Test func aMissingLeaseOrRecordMeansRedisLostKeys() {
        var heartbeat = NodeHeartbeat(ttl: .seconds(3), renewalInterval: .seconds(20))
        var lost = heartbeat.succeeded(.register, at: t0, leaseWasThere: false)
        #expect(!lost, "the first registration finds no lease: nothing lost")
        lost = heartbeat.succeeded(.beat, at: t0 + .seconds(1))
        #expect(!lost)
        #expect(heartbeat.kind(now: t0 + .seconds(2)) == .beat)
        lost = heartbeat.succeeded(.beat, at: t0 + .seconds(2), leaseWasThere: false)
        #expect(lost)
        #expect(heartbeat.kind(now: t0 + .seconds(3)) == .register)
        lost = heartbeat.succeeded(.register, at: t0 + .seconds(3), leaseWasThere: false)
        #expect(lost, "registered before, and the lease is gone")
        #expect(heartbeat.kind(now: t0 + .seconds(4)) == .register)
        lost = heartbeat.succeeded(.register, at: t0 + .seconds(4))
        #expect(!lost)
        lost = heartbeat.succeeded(.renew, at: t0 + .seconds(5), recordWasThere: false)
        #expect(lost)
        #expect(heartbeat.kind(now: t0 + .seconds(6)) == .register)
    }
}
