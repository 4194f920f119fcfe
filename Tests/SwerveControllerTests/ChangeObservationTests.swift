@testable import SwerveController
import SwerveCore
import SwerveProtocol
import SwerveRedis
import Testing

@Suite struct NodeLeaseRules {
    let t0 = ContinuousClock.now
    let noGrace = AdoptionGrace(adopted: [], now: .now, grace: .zero)
    func record(_ id: String, draining: Bool = false) -> NodeRecord {
        NodeRecord(id: id, address: "10.0.0.1", resources: Resources(cpu: 4, memoryBytes: 1 << 30), pid: 1, startedAt: 0, draining: draining)
    }

    @Test func aNodeIsAliveWhileItHasARecordAndItsLeaseRunsPastRedisTime() {
        var leases = NodeLeases()
        leases.replaceAll(["a": .init(record: record("a"), deadline: 2_000), "b": .init(record: record("b"), deadline: 1_000),
                           "c": .init(record: nil, deadline: 5_000), "d": .init(unreadable: true, deadline: 5_000)], redisNow: 1_000)
        let infos = leases.nodeInfos(cordons: [:], adoption: noGrace, now: t0)
        #expect(infos["a"]?.alive == true && infos["a"]?.schedulable == true)
        #expect(infos["b"]?.alive == false, "a lease that ran out at Redis's time is gone")
        #expect(infos["c"]?.alive == false, "a lease without a record is gone")
        #expect(infos["d"]?.alive == true && infos["d"]?.schedulable == false, "an unreadable record: alive, nothing placed")
    }

    @Test func anUpdateReplacesOnlyTheNodesReReadAndForgetsThoseWithNothingLeft() {
        var leases = NodeLeases()
        leases.replaceAll(["a": .init(record: record("a"), deadline: 2_000), "b": .init(record: record("b"), deadline: 2_000)], redisNow: 1_000)
        #expect(leases.nodeInfos(cordons: [:], adoption: noGrace, now: t0)["a"]?.alive == true)
        // a's lease lapsed and was re-read: gone; b deregistered (no record, no lease): forgotten.
        leases.update(["a": .init(record: nil, deadline: 2_000), "b": .init()], redisNow: 2_500)
        let infos = leases.nodeInfos(cordons: [:], adoption: noGrace, now: t0)
        #expect(infos["a"]?.alive == false)
        #expect(infos["b"] == nil)
        // a came back: its heartbeat registered again.
        leases.update(["a": .init(record: record("a"), deadline: 5_500)], redisNow: 2_600)
        #expect(leases.nodeInfos(cordons: [:], adoption: noGrace, now: t0)["a"]?.alive == true)
    }

    /// Heartbeats push leases forward without telling the leader: a lease read earlier is
    /// stale, and a node is judged only when read (its lapse is reported as a change).
    @Test func aNodeIsJudgedWhenReadNotAgainstLaterTimes() {
        var leases = NodeLeases()
        leases.replaceAll(["a": .init(record: record("a"), deadline: 2_000), "b": .init(record: record("b"), deadline: 9_000)], redisNow: 1_000)
        leases.update(["b": .init(record: record("b"), deadline: 9_000)], redisNow: 5_000)
        let infos = leases.nodeInfos(cordons: ["b": .cordon], adoption: noGrace, now: t0)
        #expect(infos["a"]?.alive == true, "not re-read since its lease was pushed: still alive as read")
        #expect(infos["b"]?.alive == true && infos["b"]?.schedulable == false)
    }

    @Test func cordonsAndDrainingRecordsShapeWhatIsSchedulable() {
        var leases = NodeLeases()
        leases.replaceAll(["a": .init(record: record("a"), deadline: 9_000), "b": .init(record: record("b", draining: true), deadline: 9_000)],
                          redisNow: 1_000)
        var infos = leases.nodeInfos(cordons: [:], adoption: noGrace, now: t0)
        #expect(infos["a"]?.schedulable == true && infos["a"]?.draining == false)
        #expect(infos["b"]?.draining == true)
        infos = leases.nodeInfos(cordons: ["a": .drain], adoption: noGrace, now: t0)
        #expect(infos["a"]?.schedulable == false && infos["a"]?.draining == true, "a new cordon is seen without any node changing")
    }

    @Test func anAdoptedNodeWithoutItsLeaseIsNoNewsDuringTheGraceOnly() {
        var leases = NodeLeases()
        leases.replaceAll(["a": .init(record: nil, deadline: nil)], redisNow: 1_000)
        let grace = AdoptionGrace(adopted: [], nodes: ["a", "z"], now: t0, grace: .seconds(5))
        var infos = leases.nodeInfos(cordons: [:], adoption: grace, now: t0 + .seconds(1))
        #expect(infos["a"]?.alive == true && infos["a"]?.schedulable == false)
        #expect(infos["z"]?.alive == true, "known alive at the load, not listed now")
        infos = leases.nodeInfos(cordons: [:], adoption: grace, now: t0 + .seconds(5))
        #expect(infos["a"]?.alive == false)
        #expect(infos["z"] == nil)
    }
}

@Suite struct ObservedChangesRules {
    @Test func parsesTheScriptsReplyAndListsEachTouchedNodeOnce() throws {
        let reply = RedisReply.array([.bulkString(Array("1700000000123".utf8)),
                                      .array([.bulkString(Array("api#1".utf8))]),
                                      .array([.bulkString(Array("n2".utf8)), .bulkString(Array("n1".utf8))]),
                                      .array([.bulkString(Array("n1".utf8)), .bulkString(Array("n3".utf8))])])
        let changes = try #require(ObservedChanges(reply))
        #expect(changes.redisNow == 1_700_000_000_123)
        #expect(changes.replicas == ["api#1"])
        #expect(changes.touchedNodes == ["n1", "n2", "n3"])
        #expect(ObservedChanges(.array([.integer(1)])) == nil)
        #expect(ObservedChanges(.null) == nil)
    }
}

@Suite struct FullReadScheduleRules {
    let t0 = ContinuousClock.now

    @Test func readsEverythingFirstAfterTheGraceAndThenOnlyAsASafetyNet() {
        var schedule = FullReadSchedule()
        let grace = AdoptionGrace(adopted: ["a#1"], now: t0, grace: .seconds(5))
        #expect(schedule.isDue(now: t0, adoption: grace), "the first observation after a load")
        schedule.read(at: t0, adoption: grace)
        #expect(!schedule.isDue(now: t0 + .seconds(4), adoption: grace), "changes only during the grace")
        #expect(schedule.isDue(now: t0 + .seconds(5), adoption: grace), "what was no news is judged once it ends")
        schedule.read(at: t0 + .seconds(5), adoption: grace)
        #expect(!schedule.isDue(now: t0 + .seconds(34), adoption: grace))
        #expect(schedule.isDue(now: t0 + .seconds(35), adoption: grace))
        schedule.reset()
        #expect(schedule.isDue(now: t0 + .seconds(36), adoption: grace), "after a reload")
    }
}
