@testable import SwerveController
import Testing

@Suite struct LeaseStateMachineRules {
    let t0 = ContinuousClock.now
    /// Round numbers for the rules below (the defaults are tested on their own).
    let timing = LeaseStateMachine.Timing(ttl: .milliseconds(1500), renewInterval: .milliseconds(500), safetyMargin: .milliseconds(300),
                                          retryPeriod: .milliseconds(250))

    func leader(epoch: Int64 = 7) -> LeaseStateMachine {
        var machine = LeaseStateMachine(timing: timing, now: t0)
        #expect(machine.timePassed(now: t0) == [.tryAcquire])
        #expect(machine.acquireAnswered(epoch: epoch, now: t0 + .milliseconds(5)) == [.becameLeader(epoch: epoch)])
        return machine
    }

    @Test func defaultTimingsAreValidAndBadOnesNamed() {
        let defaults = LeaseStateMachine.Timing.defaults()
        #expect(defaults.problem == nil)
        #expect(defaults.ttl == .milliseconds(1000) && defaults.renewInterval == .milliseconds(200) && defaults.safetyMargin == .milliseconds(200))
        // A follower looks for a dead holder every 20 ms whatever the TTL; sooner for a tiny one.
        #expect(defaults.retryPeriod == .milliseconds(20))
        #expect(LeaseStateMachine.Timing.defaults(ttl: .seconds(10)).retryPeriod == .milliseconds(20))
        #expect(LeaseStateMachine.Timing.defaults(ttl: .milliseconds(60)).retryPeriod == .milliseconds(10))
        #expect(timing.problem == nil)
        var slow = timing
        slow.renewInterval = .milliseconds(700)
        #expect(slow.problem?.contains("renew at most every") == true)
        var noMargin = timing
        noMargin.safetyMargin = .zero
        #expect(noMargin.problem?.contains("safety margin") == true)
    }

    @Test func aFollowerTriesAtOnceThenEveryRetryPeriod() {
        var machine = LeaseStateMachine(timing: timing, now: t0)
        #expect(machine.timePassed(now: t0) == [.tryAcquire])
        #expect(machine.acquireAnswered(epoch: nil, now: t0 + .milliseconds(1)) == [])
        #expect(machine.timePassed(now: t0 + .milliseconds(250)) == [])
        #expect(machine.timePassed(now: t0 + .milliseconds(251)) == [.tryAcquire])
    }

    @Test func theNextDeadlineIsWhatTimePassedActsOn() {
        var machine = LeaseStateMachine(timing: timing, now: t0)
        #expect(machine.nextDeadline == t0)
        _ = machine.timePassed(now: t0)
        #expect(machine.nextDeadline == nil, "an acquire in flight waits for its answer")
        _ = machine.acquireAnswered(epoch: 4, now: t0 + .milliseconds(2))
        #expect(machine.nextDeadline == t0 + .milliseconds(500), "the renew comes before the trust ends")
        #expect(machine.timePassed(now: t0 + .milliseconds(499)) == [])
        #expect(machine.timePassed(now: t0 + .milliseconds(500)) == [.renew(epoch: 4)])
        #expect(machine.nextDeadline == t0 + .milliseconds(1200), "a renew in flight: only the end of trust")
        _ = machine.renewAnswered(ok: false, now: t0 + .milliseconds(510))
        #expect(machine.nextDeadline == t0 + .milliseconds(760), "a follower again: its retry")
        _ = machine.shutdownRequested()
        #expect(machine.nextDeadline == nil)
    }

    @Test func aConfirmedPresenceMakesAFollowerTryAndALeaderRenewAtOnce() {
        // A starting elector's first try waits for its presence subscription (or 500 ms).
        var machine = LeaseStateMachine(timing: timing, now: t0 + .milliseconds(500))
        #expect(machine.timePassed(now: t0) == [])
        #expect(machine.presenceConfirmed(now: t0 + .milliseconds(3)) == [.tryAcquire])
        _ = machine.acquireAnswered(epoch: 2, now: t0 + .milliseconds(4))
        // Subscribed again mid-term: renew now, so the lease names the channel again.
        #expect(machine.presenceConfirmed(now: t0 + .milliseconds(50)) == [.renew(epoch: 2)])
        #expect(machine.presenceConfirmed(now: t0 + .milliseconds(51)) == [], "a renew already in flight")
    }

    @Test func trustIsMeasuredFromTheSendTimeNotTheAnswer() {
        var machine = LeaseStateMachine(timing: timing, now: t0)
        _ = machine.timePassed(now: t0)
        // The acquire was sent at t0 but answered 400 ms later: trust ends at t0 + 1.2 s.
        _ = machine.acquireAnswered(epoch: 3, now: t0 + .milliseconds(400))
        #expect(machine.state == .leader(epoch: 3, trustedUntil: t0 + .milliseconds(1200), renewAt: t0 + .milliseconds(500)))
    }

    @Test func aLeaderRenewsEveryThirdOfTheTTLAndExtendsItsTrust() {
        var machine = leader()
        #expect(machine.timePassed(now: t0 + .milliseconds(499)) == [])
        #expect(machine.timePassed(now: t0 + .milliseconds(500)) == [.renew(epoch: 7)])
        #expect(machine.renewAnswered(ok: true, now: t0 + .milliseconds(510)) == [])
        #expect(machine.state == .leader(epoch: 7, trustedUntil: t0 + .milliseconds(1700), renewAt: t0 + .milliseconds(1000)))
    }

    @Test func aLeaderStepsDownTheMomentItsTrustRunsOut() {
        var machine = leader()
        _ = machine.timePassed(now: t0 + .milliseconds(500))
        #expect(machine.requestFailed(now: t0 + .milliseconds(600)) == [])
        #expect(machine.timePassed(now: t0 + .milliseconds(850)) == [.renew(epoch: 7)], "retries the renew")
        #expect(machine.requestFailed(now: t0 + .milliseconds(900)) == [])
        #expect(machine.timePassed(now: t0 + .milliseconds(1200)) == [.steppedDown(epoch: 7, reason: "the lease was not renewed in time")])
        #expect(machine.epoch == nil)
    }

    @Test func aRenewThatHangsDoesNotKeepALeaderLeading() {
        // What a partition looks like: the renew went out and nothing comes back, not even an
        // error. Trust still ends on the leader's own clock.
        var machine = leader()
        #expect(machine.timePassed(now: t0 + .milliseconds(500)) == [.renew(epoch: 7)])
        #expect(machine.timePassed(now: t0 + .milliseconds(1199)) == [])
        #expect(machine.isRenewing(7))
        #expect(machine.timePassed(now: t0 + .milliseconds(1200)) == [.steppedDown(epoch: 7, reason: "the lease was not renewed in time")])
        #expect(machine.epoch == nil)
        // Its answer, when the network heals, changes nothing.
        #expect(machine.renewAnswered(ok: true, now: t0 + .milliseconds(5000)) == [])
        #expect(machine.epoch == nil)
    }

    @Test func aRefusedRenewOrFencedWriteEndsLeadershipAtOnce() {
        var refusedRenew = leader()
        _ = refusedRenew.timePassed(now: t0 + .milliseconds(500))
        #expect(refusedRenew.renewAnswered(ok: false, now: t0 + .milliseconds(501)) == [.steppedDown(epoch: 7, reason: "the lease is held by another controller")])
        var fenced = leader()
        #expect(fenced.fencedWriteRefused(now: t0 + .milliseconds(10)) == [.steppedDown(epoch: 7, reason: "a fenced write was refused")])
    }

    @Test func aRenewAnsweredAfterTheTrustWindowStillStepsDown() {
        var machine = leader()
        _ = machine.timePassed(now: t0 + .milliseconds(500))
        // Answered after the original trust (1.2 s) and after the renew's own window (1.7 s).
        #expect(machine.renewAnswered(ok: true, now: t0 + .milliseconds(1800)) == [.steppedDown(epoch: 7, reason: "the renew answered too late")])
    }

    @Test func aLeaderLeftAnnouncementMakesAFollowerTryAtOnce() {
        var machine = LeaseStateMachine(timing: timing, now: t0)
        _ = machine.timePassed(now: t0)
        _ = machine.acquireAnswered(epoch: nil, now: t0)
        #expect(machine.leaderLeft(now: t0 + .milliseconds(10)) == [.tryAcquire])
        // Announced while that try was in flight: its refusal may predate the release, so the
        // machine tries again at once instead of after the retry period.
        #expect(machine.leaderLeft(now: t0 + .milliseconds(11)) == [])
        #expect(machine.acquireAnswered(epoch: nil, now: t0 + .milliseconds(12)) == [.tryAcquire])
        #expect(machine.acquireAnswered(epoch: nil, now: t0 + .milliseconds(13)) == [], "once")
        #expect(machine.nextDeadline == t0 + .milliseconds(263))
    }

    @Test func aTermThatEndsByItselfReleasesTheLeaseAndHoldsOff() {
        var machine = leader()
        #expect(machine.termEnded(epoch: 6, now: t0 + .milliseconds(10)) == [], "an older term's end changes nothing")
        #expect(machine.termEnded(epoch: 7, now: t0 + .milliseconds(10)) == [.steppedDown(epoch: 7, reason: "it stopped leading by itself"), .release(epoch: 7)])
        #expect(machine.timePassed(now: t0 + .milliseconds(3000)) == [], "holds off for two TTLs")
        #expect(machine.timePassed(now: t0 + .milliseconds(3010)) == [.tryAcquire])
    }

    @Test func shutdownReleasesTheLeaseOfALeaderOnly() {
        var leading = leader()
        #expect(leading.shutdownRequested() == [.steppedDown(epoch: 7, reason: "shutting down"), .release(epoch: 7)])
        var following = LeaseStateMachine(timing: timing, now: t0)
        #expect(following.shutdownRequested() == [])
        #expect(following.timePassed(now: t0 + .seconds(10)) == [], "stopped for good")
    }
}
