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

    @Test func aMissingRecordOfANodeTheCheckpointKnewIsNoNewsDuringTheGraceThenGone() {
        var grace = AdoptionGrace(adopted: [], nodes: ["n1"], now: t0, grace: .seconds(5))
        let noNews = grace.filter(node: "n1", nil, now: t0 + .seconds(4))
        #expect(noNews.alive && !noNews.acceptsReplicas, "its replicas stay, nothing new goes there")
        #expect(!grace.filter(node: "n1", nil, now: t0 + .seconds(5)).alive, "after the grace it is gone")
        #expect(!grace.filter(node: "n9", nil, now: t0).alive, "a node the checkpoint did not know alive gets no grace")
    }

    /// A failover to a replica that lacked the agent's last registration drops the node from
    /// the set: during the grace it awaits confirmation like a node whose record is missing.
    @Test func aKnownNodeMissingFromTheSetAwaitsConfirmationDuringTheGraceOnly() {
        var grace = AdoptionGrace(adopted: [], nodes: ["n1", "n2"], now: t0, grace: .seconds(5))
        _ = grace.filter(node: "n2", NodeInfo(id: "n2", total: Resources(cpu: 4)), now: t0)
        #expect(grace.nodesAwaitingConfirmation(now: t0 + .seconds(1)) == ["n1"], "n2 confirmed by its record")
        #expect(grace.nodesAwaitingConfirmation(now: t0 + .seconds(5)).isEmpty, "after the grace none")
    }

    @Test func aNodeSeenOnceIsJudgedNormally() {
        var grace = AdoptionGrace(adopted: [], nodes: ["n1"], now: t0, grace: .seconds(5))
        let seen = NodeInfo(id: "n1", total: Resources(cpu: 4))
        #expect(grace.filter(node: "n1", seen, now: t0) == seen)
        #expect(!grace.filter(node: "n1", nil, now: t0 + .seconds(1)).alive, "confirmed, then its record expired: gone")
    }
}

@Suite struct GoneNodeRules {
    let now = Timestamp(milliseconds: 10_000_000)
    let hourAgo = Int64(10_000_000 - 3_600_000)

    @Test func aNodeSilentForOverTheRetentionWithNoRecordAndNoReplicaIsPruned() {
        let listed = ["old": hourAgo - 1, "recent": hourAgo + 1, "recorded": hourAgo - 1]
        #expect(GoneNodes.prunable(listed: listed, withRecord: ["recorded"], occupied: [], now: now) == ["old"])
    }

    @Test func aNodeSomeReplicaStillNamesIsKept() {
        #expect(GoneNodes.prunable(listed: ["old": 0], withRecord: [], occupied: ["old"], now: now).isEmpty)
    }
}
