import NIOCore
import NIOHTTP1
import SwerveCore
@testable import SwerveRouter
import Testing

/// Every retry rule of a proxied request, one transition at a time (no sockets, no clock).
@Suite struct ExchangeRules {
    typealias Machine = ExchangeStateMachine
    let a = ReplicaBalancer.RoutedReplicaChoice(tag: "api#a", address: HostPort(host: "10.0.0.1", port: 1))
    let b = ReplicaBalancer.RoutedReplicaChoice(tag: "api#b", address: HostPort(host: "10.0.0.2", port: 1))
    let body = HTTPServerRequestPart.body(ByteBuffer(string: "x"))

    /// A GET whose head went out on a connection to `a` (`pooled` or fresh), ended or not.
    func sent(_ method: HTTPMethod = .GET, pooled: Bool, ended: Bool = true) -> Machine {
        var machine = Machine(method: method)
        #expect(machine.chosen(a) == .connect(a))
        if ended { #expect(machine.requestPart(.end(nil)) == .none, "held while connecting") }
        #expect(machine.connected(pooled: pooled) == .sendRequest(buffered: ended ? [.end(nil)] : []))
        return machine
    }

    @Test func aRequestCountsAsSentFromItsConnectionUntilItIsAnswered() {
        var machine = Machine(method: .GET)
        #expect(!machine.requestSent)
        _ = machine.chosen(a)
        #expect(!machine.requestSent, "connecting: the client's parts are held")
        _ = machine.connected(pooled: true)
        #expect(machine.requestSent)
        _ = machine.requestPart(.end(nil))
        _ = machine.responseHead(status: .ok, unprocessed: false)
        #expect(machine.requestSent)
        _ = machine.responseEnded()
        #expect(!machine.requestSent, "done")
    }

    @Test func aRequestForAnAutoscaledBackendAtZeroWaitsForAReplica() {
        var fixed = Machine(method: .GET)
        #expect(fixed.noReplicaLeft(mayWait: true) == .fail(.noReplicas, release: nil), "a fixed backend at zero answers 503 at once")
        var autoscaled = Machine(method: .GET)
        #expect(autoscaled.noReplicaLeft(mayWait: true, autoscaled: true) == .awaitTable, "one that scales from zero waits")
        #expect(autoscaled.noReplicaLeft(mayWait: false, autoscaled: true) == .fail(.noReplicas, release: nil), "until the queue timeout")
    }

    @Test func aFailedConnectTriesAnotherReplicaAndDoesNotCountAsAResend() {
        var machine = Machine(method: .POST)
        _ = machine.chosen(a)
        #expect(machine.requestPart(body) == .none)
        #expect(machine.connectFailed() == .retry(release: a, reason: .connectFailed))
        #expect(machine.tried == ["api#a"] && machine.resends == 0 && machine.buffered == [body])
        #expect(machine.chosen(b) == .connect(b))
        #expect(machine.connected(pooled: false) == .sendRequest(buffered: [body]), "the held body goes to the replica that connected")
    }

    @Test func whenEveryReplicaRefusedTheAnswerIs502NamingThem() {
        var machine = Machine(method: .GET)
        _ = machine.chosen(b); _ = machine.connectFailed()
        _ = machine.chosen(a); _ = machine.connectFailed()
        #expect(machine.noReplicaLeft() == .fail(.unreachable(tried: ["api#a", "api#b"]), release: nil))
        var gone = Machine(method: .GET)
        #expect(gone.backendGone() == .fail(.noReplicas, release: nil))
        var fresh = Machine(method: .GET)
        #expect(fresh.noReplicaLeft() == .fail(.noReplicas, release: nil), "nothing tried: there is none")
    }

    @Test func whenEveryReplicaRefusedItWaitsForTheNextTableWhileTheQueueTimeoutAllows() {
        // A node agent was killed with its workers: every replica the table lists refuses.
        // The leader is replacing them; the request waits for the table that lists the new ones.
        var machine = Machine(method: .POST)
        #expect(machine.requestPart(body) == .none)
        _ = machine.chosen(a); _ = machine.connectFailed()
        #expect(machine.noReplicaLeft(mayWait: true) == .awaitTable)
        #expect(machine.phase == .choosing && machine.buffered == [body], "still choosing, the body held")
        // The next table lists b (new) beside a (tried): b is chosen, the held body goes to it.
        #expect(machine.chosen(b) == .connect(b))
        #expect(machine.connected(pooled: false) == .sendRequest(buffered: [body]))
        // Past the queue timeout, the 502 as before.
        var late = Machine(method: .GET)
        _ = late.chosen(a); _ = late.connectFailed()
        #expect(late.noReplicaLeft(mayWait: false) == .fail(.unreachable(tried: ["api#a"]), release: nil))
    }

    @Test func onlyARequestThatCanStillGoElsewhereWaitsForATable() {
        var fresh = Machine(method: .GET)
        #expect(fresh.noReplicaLeft(mayWait: true) == .fail(.noReplicas, release: nil), "no replica at all: said at once")
        var lost = sent(pooled: false)
        #expect(lost.upstreamLost() == .retry(release: a, reason: .connectionLost))
        #expect(lost.noReplicaLeft(mayWait: true) == .fail(.replicaClosed(replica: "api#a"), release: nil), "its replica died with it")
        var streamed = sent(.POST, pooled: false, ended: false)
        #expect(streamed.requestPart(body) == .forward(body))
        #expect(streamed.connectFailed() == .none)
        #expect(streamed.noReplicaLeft(mayWait: true) == .none, "not choosing: it was sent")
    }

    @Test func unprocessedFrom503GoesElsewhereButNotBackToTheSameReplica() {
        var machine = sent(pooled: false)
        #expect(machine.responseHead(status: .serviceUnavailable, unprocessed: true) == .retry(release: a, reason: .unprocessed))
        #expect(machine.tried == ["api#a"] && machine.resends == 1 && machine.buffered == [.end(nil)])
    }

    @Test func a503WithoutTheUnprocessedMarkIsTheAnswer() {
        var machine = sent(pooled: false)
        #expect(machine.responseHead(status: .serviceUnavailable, unprocessed: false) == .forwardResponseHead)
        #expect(machine.responseEnded() == .finish(a, reusable: true))
    }

    @Test func unprocessedAfterABodyPartWentOutIsTheAnswer() {
        var machine = sent(.POST, pooled: false, ended: false)
        #expect(machine.requestPart(body) == .forward(body))
        #expect(machine.responseHead(status: .serviceUnavailable, unprocessed: true) == .forwardResponseHead)
    }

    @Test func aStalePooledConnectionRepeatsAnIdempotentRequestOnAnyReplica() {
        var machine = sent(pooled: true)
        #expect(machine.upstreamLost() == .retry(release: a, reason: .connectionLost))
        #expect(machine.tried.isEmpty, "the same replica may take it: only its idle connection was stale")
        #expect(machine.chosen(a) == .connect(a))
    }

    @Test func anIdempotentRequestWhoseReplicaDiedGoesToAnotherReplica() {
        for method in [HTTPMethod.GET, .HEAD, .OPTIONS, .TRACE, .PUT, .DELETE] {
            var machine = sent(method, pooled: false)
            #expect(machine.upstreamLost() == .retry(release: a, reason: .connectionLost), "\(method)")
            #expect(machine.tried == ["api#a"], "a fresh connection lost: the replica died, it is not tried again")
            #expect(machine.chosen(b) == .connect(b))
            #expect(machine.connected(pooled: false) == .sendRequest(buffered: [.end(nil)]))
        }
    }

    @Test func whenNoOtherReplicaIsLeftTheLossIsTheAnswer() {
        var machine = sent(pooled: false)
        _ = machine.upstreamLost()
        #expect(machine.noReplicaLeft() == .fail(.replicaClosed(replica: "api#a"), release: nil), "not 'refused the connection': it took the request")
    }

    @Test func aNonIdempotentRequestOrABackendThatOptedOutIsNotRepeated() {
        var post = sent(.POST, pooled: true)
        #expect(post.upstreamLost() == .fail(.replicaClosed(replica: "api#a"), release: a))
        var patch = sent(.PATCH, pooled: false)
        #expect(patch.upstreamLost() == .fail(.replicaClosed(replica: "api#a"), release: a))
        var optedOut = Machine(method: .GET, retryIdempotentRequests: false)
        _ = optedOut.chosen(a)
        _ = optedOut.requestPart(.end(nil))
        _ = optedOut.connected(pooled: true)
        #expect(optedOut.upstreamLost() == .fail(.replicaClosed(replica: "api#a"), release: a), "not even on a pooled connection")
    }

    @Test func aSilentReplicaIsGivenUpNotRetried() {
        var waiting = sent(pooled: false)
        #expect(waiting.upstreamTimedOut() == .fail(.upstreamTimeout(replica: "api#a"), release: a))
        #expect(waiting.upstreamLost() == .none, "answered: the closing connection changes nothing")
        var streaming = sent(pooled: false)
        _ = streaming.responseHead(status: .ok, unprocessed: false)
        #expect(streaming.upstreamTimedOut() == .closeClient(release: a), "a response cut short must not look complete")
        var queued = Machine(method: .GET)
        #expect(queued.upstreamTimedOut() == .none, "no replica yet: the queue timeout applies")
    }

    @Test func aStalePooledConnectionAfterABodyPartIsNotRepeated() {
        var machine = sent(.PUT, pooled: true, ended: false)
        _ = machine.requestPart(body)
        #expect(machine.upstreamLost() == .fail(.replicaClosed(replica: "api#a"), release: a))
    }

    @Test func onceResponseBytesWentOutALostReplicaClosesTheClient() {
        var machine = sent(pooled: true)
        _ = machine.responseHead(status: .ok, unprocessed: false)
        #expect(machine.upstreamLost() == .closeClient(release: a), "a cut response must not look complete")
    }

    @Test func resendsAreBounded() {
        var machine = sent(pooled: true)
        for _ in 0..<Machine.maximumResends {
            #expect(machine.upstreamLost() == .retry(release: a, reason: .connectionLost))
            _ = machine.chosen(a)
            _ = machine.connected(pooled: true)
        }
        #expect(machine.upstreamLost() == .fail(.replicaClosed(replica: "api#a"), release: a))
    }

    @Test func aResponseBeforeTheRequestEndedIsNotPooled() {
        var machine = sent(.POST, pooled: false, ended: false)
        _ = machine.responseHead(status: .payloadTooLarge, unprocessed: false)
        #expect(machine.responseEnded() == .finish(a, reusable: false))
    }

    @Test func theClientLeavingFreesWhatTheRequestHeld() {
        var queued = Machine(method: .GET)
        #expect(queued.clientClosed() == .abandon(release: nil, dequeue: true))
        var connecting = Machine(method: .GET)
        _ = connecting.chosen(a)
        #expect(connecting.clientClosed() == .abandon(release: a, dequeue: false))
        #expect(connecting.clientClosed() == .none, "once")
        #expect(connecting.connected(pooled: false) == .none, "a late connection is not used")
    }

    @Test func queueOutcomesAnswer503() {
        var full = Machine(method: .GET)
        #expect(full.queueFull() == .fail(.queueFull, release: nil))
        var waited = Machine(method: .GET)
        #expect(waited.queueTimedOut() == .fail(.queueTimeout, release: nil))
        #expect(waited.requestPart(body) == .none, "the body of an answered request is dropped")
    }
}
