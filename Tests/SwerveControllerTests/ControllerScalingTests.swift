import Foundation
import Glibc
import SwerveCore
import SwerveProtocol
import SwerveRedis
import SwerveTestSupport
import Testing

extension ControllerProcesses {
    /// Scaling 3 → 1 drains two replicas; a slow request in flight on each finishes first,
    /// and the goal settles only once they stopped.
    @Test func scalingDownDrainsReplicasWhileTheirSlowRequestsFinish() async throws {
        let leader = try controller("c1")
        let agent = try node()
        defer { leader.kill(); agent.kill(SIGTERM) }
        let config = BackendConfig(numReplicas: 3, gracefulShutdownWaitLoopS: 0.2)
        #expect(try await request(.createBackend(tag: "api", config: config,
                                                 replicaConfig: ReplicaConfig(workload: .builtin(name: "sleep"), resources: Resources(cpu: 1))), goal: "g-1") == GoalOutcome(goal: "g-1"))
        let routed = try await routedReplicas()
        #expect(routed.count == 3)
        var pids: [String: Int32] = [:]
        for tag in routed.keys { pids[tag] = try await pid(tag) }

        // A 2 s request on every replica — each written to its socket before the scale-down is
        // even submitted, whatever the scheduler does — then the scale-down.
        let slow = try routed.map { tag, address in (tag, try PendingHTTPResponse(address, path: "/?ms=2000")) }
        let sent = ContinuousClock.now
        #expect(try await request(.updateBackendConfig(tag: "api", patch: BackendConfigPatch(numReplicas: 1)), goal: "g-2") == GoalOutcome(goal: "g-2"))
        let settled = ContinuousClock.now

        let survivors = try await routedReplicas()
        #expect(survivors.count == 1)
        let survivor = try #require(survivors.keys.first)
        #expect(try await pid(survivor) == pids[survivor], "the survivor kept running")
        for (tag, pending) in slow {
            let (status, finished) = try await pending.response()
            #expect(status == 200, "\(tag)'s request finished")
            if tag != survivor {
                // A 200 says the request ran to its end. The close is noted by a reader thread
                // when it is next scheduled, which on a loaded machine can be a moment after the
                // goal's message arrived on another; a drain that cut the 2 s request short would
                // have answered nothing, long before.
                #expect(finished <= settled + .milliseconds(500), "\(tag) stopped only after its request finished")
            }
        }
        #expect(settled - sent >= .milliseconds(1500), "the goal waited for the drains")
        let state = try await checkpoint()
        #expect(state.backends.first?.replicas.map(\.tag) == [survivor], "the drained replicas stopped and were forgotten")
        // A drained worker exits right after writing its drained key; the node reaps it.
        for (tag, pid) in pids where tag != survivor {
            let deadline = ContinuousClock.now + .seconds(5)
            while kill(pid, 0) == 0, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
            #expect(kill(pid, 0) != 0, "\(tag)'s worker (pid \(pid)) exited")
        }
    }
}
