@testable import SwerveCore
import Testing

/// The transitions `swerve events` shows, derived from the state before and after each step.
@Suite struct ClusterEvents {
    /// One step, returning the events it made.
    func step(_ h: inout Harness) -> [ClusterEvent] {
        let before = h.state
        let actions = h.step()
        return ClusterEvent.between(before, h.state, actions: actions)
    }

    @Test func aBackendsLifeIsToldOnceEachStep() {
        var h = Harness()
        let goal = h.world.request(.createBackend(tag: "api", config: BackendConfig(numReplicas: 2), replicaConfig: echo()))
        let created = step(&h)
        #expect(created.filter { $0.kind == .backendCreated }.map(\.backend) == ["api"])
        let starting = created.filter { $0.kind == .replica }
        #expect(starting.count == 2 && starting.allSatisfy { $0.message.hasPrefix("STARTING") && $0.replica?.hasPrefix("api#") == true })

        h.world.advance()
        let ready = step(&h)
        #expect(ready.filter { $0.kind == .replica }.allSatisfy { $0.message.hasPrefix("STARTING → RUNNING") })
        #expect(ready.filter { $0.kind == .replica }.count == 2)
        #expect(ready.contains(ClusterEvent(kind: .goalCompleted, backend: "api", goal: goal, message: "goal \(goal) completed")))
        #expect(step(&h).isEmpty, "nothing changed, nothing told")

        h.world.request(.updateBackendConfig(tag: "api", patch: BackendConfigPatch(numReplicas: 1)))
        let scaled = step(&h)
        #expect(scaled.first == ClusterEvent(kind: .backendUpdated, backend: "api", message: "replicas 2 → 1"))
        #expect(scaled.contains { $0.kind == .replica && $0.message.hasPrefix("RUNNING → ") })

        h.world.request(.deleteBackend(tag: "api", force: false))
        var all = step(&h)
        #expect(all.first?.kind == .backendDeleting)
        for _ in 0..<20 where !all.contains(where: { $0.kind == .backendRemoved }) {
            h.world.advance()
            all += step(&h)
        }
        #expect(all.contains(ClusterEvent(kind: .backendRemoved, backend: "api", message: "removed")))
        #expect(all.filter { $0.kind == .replica && $0.message.contains("→ removed") }.count == 2, "both replicas' records were dropped")
    }

    @Test func aFailedGoalSaysWhy() {
        var h = Harness()
        let goal = h.world.request(.updateBackendConfig(tag: "ghost", patch: BackendConfigPatch(numReplicas: 2)))
        let events = step(&h)
        #expect(events.count == 1 && events.first?.kind == .goalFailed)
        #expect(events.first?.message.hasPrefix("goal \(goal) failed: ") == true && events.first?.message.contains("ghost") == true)
    }
}
