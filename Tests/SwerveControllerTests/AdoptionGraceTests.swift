@testable import SwerveController
import SwerveCore
import Testing

@Suite struct AdoptionGraceRules {
    let t0 = ContinuousClock.now
    let missing = ReplicaObservation()
    let ready = ReplicaObservation.ready(HostPort(host: "10.0.0.1", port: 1))

    @Test func aMissingReadyKeyOnAnAdoptedReplicaIsNoNewsDuringTheGrace() {
        var grace = AdoptionGrace(adopted: ["a#1"], now: t0, grace: .seconds(3))
        #expect(grace.filter(missing, tag: "a#1", now: t0 + .seconds(2)) == nil)
        #expect(grace.filter(missing, tag: "a#1", now: t0 + .seconds(3)) == missing, "after the grace it counts")
    }

    @Test func onceSeenReadyAReplicaIsJudgedNormally() {
        var grace = AdoptionGrace(adopted: ["a#1"], now: t0, grace: .seconds(3))
        #expect(grace.filter(ready, tag: "a#1", now: t0) == ready)
        #expect(grace.filter(missing, tag: "a#1", now: t0 + .seconds(1)) == missing)
    }

    @Test func anExitOrAReplicaThatWasNotAdoptedIsAlwaysReported() {
        var grace = AdoptionGrace(adopted: ["a#1"], now: t0, grace: .seconds(3))
        let exited = ReplicaObservation(exit: "signal 9")
        #expect(grace.filter(exited, tag: "a#1", now: t0) == exited)
        #expect(grace.filter(missing, tag: "b#2", now: t0) == missing)
    }
}
