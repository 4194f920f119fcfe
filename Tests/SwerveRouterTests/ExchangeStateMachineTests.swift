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

    @Test func aFailedConnectTriesAnotherReplicaAndDoesNotCountAsAResend() {
        var machine = Machine(method: .POST)
        _ = machine.chosen(a)
        #expect(machine.requestPart(body) == .none)
        #expect(machine.connectFailed() == .choose(release: a))
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

    @Test func unprocessedFrom503GoesElsewhereButNotBackToTheSameReplica() {
        var machine = sent(pooled: false)
        #expect(machine.responseHead(status: .serviceUnavailable, unprocessed: true) == .choose(release: a))
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
        #expect(machine.upstreamLost() == .choose(release: a))
        #expect(machine.tried.isEmpty, "the same replica may take it: only its idle connection was stale")
        #expect(machine.chosen(a) == .connect(a))
    }

    @Test func aLostFreshConnectionOrANonIdempotentRequestIsNotRepeated() {
        var fresh = sent(pooled: false)
        #expect(fresh.upstreamLost() == .fail(.replicaClosed(replica: "api#a"), release: a))
        var post = sent(.POST, pooled: true)
        #expect(post.upstreamLost() == .fail(.replicaClosed(replica: "api#a"), release: a))
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
            #expect(machine.upstreamLost() == .choose(release: a))
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
