import SwerveErrors
@testable import SwerveRedis
import SwerveTestSupport
import Testing

@Suite struct ReconnectBackoffRules {
    let backoff = ReconnectBackoff(initial: .milliseconds(100), maximum: .seconds(1), jitter: 0.5)

    @Test func doublesFromInitialUpToTheMaximum() {
        #expect(backoff.delay(afterFailures: 1, random: 0) == .milliseconds(100))
        #expect(backoff.delay(afterFailures: 2, random: 0) == .milliseconds(200))
        #expect(backoff.delay(afterFailures: 4, random: 0) == .milliseconds(800))
        #expect(backoff.delay(afterFailures: 5, random: 0) == .seconds(1))
        #expect(backoff.delay(afterFailures: 1000, random: 0) == .seconds(1))
    }

    @Test func jitterOnlyShortensTheDelay() {
        #expect(backoff.delay(afterFailures: 2, random: 1) == .milliseconds(100))
        #expect(backoff.delay(afterFailures: 2, random: 0.5) == .milliseconds(150))
    }
}

@Suite struct ConnectionStateMachineRules {
    let start = ContinuousClock.now
    let error = RedisError(.connectFailed, "cannot connect to Redis at h:1: Connection refused")

    func machine() -> ConnectionStateMachine {
        ConnectionStateMachine(backoff: ReconnectBackoff(initial: .milliseconds(100), maximum: .seconds(1), jitter: 0), serverDescription: "h:1")
    }

    @Test func theFirstCommandConnects() {
        var machine = machine()
        #expect(machine.commandsArrived(now: start) == .connectThenSend)
    }

    @Test func aConnectedMachineSends() {
        var machine = machine()
        _ = machine.commandsArrived(now: start)
        machine.connectSucceeded()
        #expect(machine.commandsArrived(now: start) == .send)
    }

    @Test func afterAFailedConnectCommandsFailFastUntilTheRetryIsDue() {
        var machine = machine()
        _ = machine.commandsArrived(now: start)
        machine.connectFailed(error, now: start, random: 0)
        guard case .fail(let failure) = machine.commandsArrived(now: start + .milliseconds(50)) else {
            Issue.record("expected fail-fast")
            return
        }
        #expect(failure.code == .unavailable)
        #expect(failure.message.contains("Connection refused"))
        #expect(failure.message.contains("next reconnect attempt in 50 ms"))
        #expect(machine.commandsArrived(now: start + .milliseconds(100)) == .connectThenSend)
    }

    @Test func consecutiveFailuresBackOffExponentially() {
        var machine = machine()
        machine.connectFailed(error, now: start, random: 0)
        machine.connectFailed(error, now: start + .milliseconds(100), random: 0)
        #expect(machine.state == .backingOff(retryAt: start + .milliseconds(300), failures: 2, lastError: error))
    }

    @Test func aLostConnectionReconnectsAtOnceWithTheBackoffReset() {
        var machine = machine()
        machine.connectFailed(error, now: start, random: 0)
        machine.connectSucceeded()
        machine.connectionLost()
        #expect(machine.commandsArrived(now: start) == .connectThenSend)
        machine.connectFailed(error, now: start, random: 0)
        #expect(machine.state == .backingOff(retryAt: start + .milliseconds(100), failures: 1, lastError: error))
    }

    @Test func aClosedMachineFailsEverythingAndStaysClosed() {
        var machine = machine()
        machine.closeRequested()
        machine.connectSucceeded()
        machine.connectionLost()
        guard case .fail(let failure) = machine.commandsArrived(now: start) else {
            Issue.record("expected failure")
            return
        }
        #expect(failure.code == .closed)
    }
}

@Suite struct ScriptNames {
    @Test func sha1OfKnownVectors() {
        #expect(sha1Hex([]) == "da39a3ee5e6b4b0d3255bfef95601890afd80709")
        #expect(sha1Hex(Array("abc".utf8)) == "a9993e364706816aba3e25717850c26c9cd0d89d")
        #expect(sha1Hex(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)) == "84983e441c3bd26ebaae4aa1f95129e5e54670f1")
        #expect(sha1Hex([UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000)) == "34aa973cd4c4daa4f61eeb2bdbad27316534016f")
    }

    @Test func evalshaCommandCarriesKeysThenArguments() {
        let script = RedisScript("return 1")
        let command = script.command(keys: ["k1", "k2"], arguments: [7])
        #expect(command.arguments.map { String(decoding: $0, as: UTF8.self) } == ["EVALSHA", script.sha1, "2", "k1", "k2", "7"])
        #expect(command.script == script)
    }
}
