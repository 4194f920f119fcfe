@testable import SwerveCore
import Testing

/// A request that crashes leaders is isolated and, after ``RequestAdmission/maxAttempts``
/// attempts, quarantined; with no failed attempt nothing is held back.
@Suite struct RequestAdmissionRules {
    func request(_ sequence: UInt64) -> Request {
        Request(id: RequestID(milliseconds: 5, sequence: sequence), goal: "g-\(sequence)", operation: .deleteBackend(tag: "t", force: false))
    }

    func id(_ sequence: UInt64) -> RequestID { RequestID(milliseconds: 5, sequence: sequence) }

    @Test func withoutAFailedAttemptTheWholeBatchIsAppliedAndRecorded() {
        let decision = RequestAdmission.admit(requests: [request(1), request(2), request(3)], refused: [], record: nil)
        #expect(decision.requests.map(\.id) == [id(1), id(2), id(3)])
        #expect(decision.record == RequestAttempt(first: id(1), last: id(3), attempts: 1))
    }

    @Test func aRecordTheCursorPassedIsStale() {
        let stale = RequestAttempt(first: id(1), last: id(3), attempts: 1)
        let decision = RequestAdmission.admit(requests: [request(4), request(5)], refused: [], record: stale)
        #expect(decision.requests.count == 2 && decision.record == RequestAttempt(first: id(4), last: id(5), attempts: 1))
    }

    @Test func afterAnUnfinishedAttemptRequestsGoOneAtATimeUpToTheBatchsEnd() {
        let crashed = RequestAttempt(first: id(1), last: id(3), attempts: 1)
        let refused = [RefusedRequest(id: id(2), goal: "g-2", reason: "unreadable")]
        let decision = RequestAdmission.admit(requests: [request(1), request(3)], refused: refused, record: crashed)
        #expect(decision.requests.map(\.id) == [id(1)])
        #expect(decision.refused.isEmpty, "an entry after the admitted one waits: the cursor must not pass request 1's successors unapplied")
        #expect(decision.record == RequestAttempt(first: id(1), last: id(3), attempts: 2))
        // Request 1 went through; the next step takes the refusal and request 3, still alone.
        let next = RequestAdmission.admit(requests: [request(3)], refused: refused, record: decision.record)
        #expect(next.refused.map(\.id) == [id(2)] && next.requests.map(\.id) == [id(3)])
        #expect(next.record == RequestAttempt(first: id(3), last: id(3), attempts: 1))
    }

    @Test func aRequestAttemptedMaxAttemptsTimesIsQuarantinedAndTheStreamMovesOn() {
        var record: RequestAttempt? = RequestAttempt(first: id(1), last: id(2), attempts: 1)
        // Request 1 crashes the leader every time: each attempt is recorded before it.
        for expected in 2...RequestAdmission.maxAttempts {
            let decision = RequestAdmission.admit(requests: [request(1), request(2)], refused: [], record: record)
            #expect(decision.requests.map(\.id) == [id(1)] && decision.record?.attempts == expected)
            record = decision.record
        }
        let quarantine = RequestAdmission.admit(requests: [request(1), request(2)], refused: [], record: record)
        #expect(quarantine.requests.isEmpty && quarantine.record == nil)
        #expect(quarantine.quarantined?.id == id(1))
        #expect(quarantine.refused == [RefusedRequest(id: id(1), goal: "g-1",
                                                      reason: "quarantined after 3 attempts: leaders crashed or failed while applying request 5-1")])
        // Once past it, request 2 gets its own attempts.
        let after = RequestAdmission.admit(requests: [request(2)], refused: [], record: record)
        #expect(after.requests.map(\.id) == [id(2)] && after.record?.attempts == 1)
    }

    @Test func quarantiningThroughTheReconcilerFailsTheGoalAndMovesTheCursor() {
        var h = Harness()
        let record = RequestAttempt(first: id(1), last: id(1), attempts: RequestAdmission.maxAttempts)
        let poison = Request(id: id(1), goal: "poison", operation: .createBackend(tag: "api", config: BackendConfig(), replicaConfig: echo()))
        let decision = RequestAdmission.admit(requests: [poison], refused: [], record: record)
        let observations = Observations(now: h.world.now, requests: decision.requests, refusedRequests: decision.refused, nodes: h.world.nodes)
        let (next, actions) = Reconciler.reconcile(h.state, observations)
        h.state = next
        #expect(actions.failedGoals["poison"]?.hasPrefix("quarantined after 3 attempts") == true)
        #expect(next.lastAppliedRequest == id(1) && next.backends.isEmpty)
    }
}
