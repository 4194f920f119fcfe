@testable import SwerveController
import SwerveCore
import Testing

@Suite struct AdoptionGraceRules {
    let t0 = ContinuousClock.now
    let missing = ReplicaObservation()
    let ready = ReplicaObservation.ready(HostPort(host: "10.0.0.1", port: 1))

    @Test func aMissingReadyKeyOnAnAdoptedReplicaIsNoNewsDuringTheGrace() {
        let grace = AdoptionGrace(adopted: ["a#1"], now: t0, grace: .seconds(3))
        #expect(grace.filter(missing, tag: "a#1", now: t0 + .seconds(2)) == nil)
        #expect(grace.filter(missing, tag: "a#1", now: t0 + .seconds(3)) == missing, "after the grace it counts")
    }

    /// Right after a failover the leader may read a ready key written before the outage whose
    /// TTL has not run out yet; it expires moments later while the worker still reconnects.
    /// Seeing it must not end the grace (the chaos run killed two replicas that way).
    @Test func aReadyKeySeenDuringTheGraceDoesNotEndIt() {
        let grace = AdoptionGrace(adopted: ["a#1"], now: t0, grace: .seconds(3))
        #expect(grace.filter(ready, tag: "a#1", now: t0) == ready)
        #expect(grace.filter(missing, tag: "a#1", now: t0 + .seconds(1)) == nil, "its leftover expired: still no news")
        #expect(grace.filter(missing, tag: "a#1", now: t0 + .seconds(3)) == missing, "after the grace it counts")
    }

    @Test func anExitOrAReplicaThatWasNotAdoptedIsAlwaysReported() {
        let grace = AdoptionGrace(adopted: ["a#1"], now: t0, grace: .seconds(3))
        let exited = ReplicaObservation(exit: "signal 9")
        #expect(grace.filter(exited, tag: "a#1", now: t0) == exited)
        #expect(grace.filter(missing, tag: "b#2", now: t0) == missing)
    }

    @Test func aMissingRecordOfANodeTheCheckpointKnewIsNoNewsDuringTheGraceThenGone() {
        let grace = AdoptionGrace(adopted: [], nodes: ["n1"], now: t0, grace: .seconds(5))
        let noNews = grace.filter(node: "n1", nil, now: t0 + .seconds(4))
        #expect(noNews.alive && !noNews.acceptsReplicas, "its replicas stay, nothing new goes there")
        #expect(!grace.filter(node: "n1", nil, now: t0 + .seconds(5)).alive, "after the grace it is gone")
        #expect(!grace.filter(node: "n9", nil, now: t0).alive, "a node the checkpoint did not know alive gets no grace")
    }

    /// A failover to a replica that lacked the agent's last registration drops the node from
    /// the set: during the grace it is no news like a node whose record is missing.
    @Test func aKnownNodeMissingFromTheSetIsInTheGraceUntilItEnds() {
        let grace = AdoptionGrace(adopted: [], nodes: ["n1", "n2"], now: t0, grace: .seconds(5))
        _ = grace.filter(node: "n2", NodeInfo(id: "n2", total: Resources(cpu: 4)), now: t0)
        #expect(grace.nodesInGrace(now: t0 + .seconds(1)) == ["n1", "n2"], "a record seen does not end it")
        #expect(grace.nodesInGrace(now: t0 + .seconds(5)).isEmpty, "after the grace none")
    }

    /// The same for a node: a record read just after a failover may be a leftover about to
    /// expire while its agent reconnects; that expiry is no news during the grace.
    @Test func aNodeRecordSeenDuringTheGraceDoesNotEndIt() {
        let grace = AdoptionGrace(adopted: [], nodes: ["n1"], now: t0, grace: .seconds(5))
        let seen = NodeInfo(id: "n1", total: Resources(cpu: 4))
        #expect(grace.filter(node: "n1", seen, now: t0) == seen)
        #expect(grace.filter(node: "n1", nil, now: t0 + .seconds(1)).alive, "its leftover expired: still alive")
        #expect(!grace.filter(node: "n1", nil, now: t0 + .seconds(5)).alive, "after the grace: gone")
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
