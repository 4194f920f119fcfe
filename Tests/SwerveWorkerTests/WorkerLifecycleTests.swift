@testable import SwerveWorker
import SwerveCore
import Testing

@Suite struct WorkerLifecycleRules {
    func ready() -> WorkerLifecycle {
        var lifecycle = WorkerLifecycle()
        #expect(lifecycle.codeBecameReady() == [.writeReady(announce: true)])
        return lifecycle
    }

    @Test func readinessIsAnnouncedOnceAndWrittenAgainAfterAReconnect() {
        var lifecycle = ready()
        #expect(lifecycle.codeBecameReady() == [])
        #expect(lifecycle.reconnected() == [.writeReady(announce: false)])
    }

    @Test func anUnhealthyReplicaRetractsItsReadyRecordOnceAndRestoresItWhenHealthy() {
        var lifecycle = ready()
        #expect(lifecycle.healthProbed(healthy: true) == [], "no change, nothing written")
        #expect(lifecycle.healthProbed(healthy: false) == [.retractReady])
        #expect(lifecycle.healthProbed(healthy: false) == [])
        #expect(lifecycle.reconnected() == [], "an unhealthy replica does not write itself ready after a reconnect")
        #expect(lifecycle.healthProbed(healthy: true) == [.writeReady(announce: false)])
    }

    @Test func healthChangesWhileDrainingWriteNothing() {
        var lifecycle = ready()
        _ = lifecycle.drainRequested(now: 0, waitLoopS: 5, deadline: 10_000, inFlight: 1)
        #expect(lifecycle.healthProbed(healthy: false) == [])
        #expect(lifecycle.healthProbed(healthy: true) == [])
    }

    @Test func aDrainKeepsAcceptingStragglersForTheWaitLoopThenStopsAccepting() {
        var lifecycle = ready()
        #expect(lifecycle.drainRequested(now: 1000, waitLoopS: 2, deadline: 20_000, inFlight: 1) == [])
        #expect(lifecycle.acceptsRequests)
        #expect(lifecycle.reconnected() == [], "not written ready again while draining")
        // The worker's timer fires at the end of the wait loop, not at some later tick.
        #expect(lifecycle.nextDeadline == 3000)
        #expect(lifecycle.timePassed(now: 2999, inFlight: 1) == [])
        #expect(lifecycle.timePassed(now: 3000, inFlight: 1) == [.stopAccepting])
        #expect(!lifecycle.acceptsRequests)
        #expect(lifecycle.nextDeadline == nil, "closing: the last request to finish ends it, not the clock")
    }

    @Test func theCodeStopsOnlyOnceNothingIsInFlight() {
        var lifecycle = ready()
        _ = lifecycle.drainRequested(now: 0, waitLoopS: 0, deadline: 10_000, inFlight: 2)
        #expect(lifecycle.timePassed(now: 10, inFlight: 1) == [])
        #expect(lifecycle.timePassed(now: 20, inFlight: 0) == [.stopCode])
        #expect(lifecycle.codeStopped() == [.finishDrain])
        #expect(lifecycle.state == .drained)
    }

    @Test func anIdleReplicaWithNoWaitLoopDrainsAtOnce() {
        var lifecycle = ready()
        #expect(lifecycle.drainRequested(now: 0, waitLoopS: 0, deadline: 1, inFlight: 0) == [.stopAccepting, .stopCode])
    }

    @Test func theWaitLoopNeverOutlastsTheDeadline() {
        var lifecycle = ready()
        _ = lifecycle.drainRequested(now: 0, waitLoopS: 60, deadline: 500, inFlight: 0)
        #expect(lifecycle.timePassed(now: 500, inFlight: 0) == [.stopAccepting, .stopCode])
    }

    @Test func aForcedDrainIsLeftToTheNodeAgentsKill() {
        var lifecycle = ready()
        #expect(lifecycle.drainRequested(now: 0, waitLoopS: 0, deadline: 0, force: true, inFlight: 0) == [])
        #expect(lifecycle.state == .ready)
    }

    @Test func aRepeatedDrainRequestChangesNothing() {
        var lifecycle = ready()
        _ = lifecycle.drainRequested(now: 0, waitLoopS: 1, deadline: 5000, inFlight: 0)
        let state = lifecycle.state
        #expect(lifecycle.drainRequested(now: 100, waitLoopS: 1, deadline: 9000, inFlight: 0) == [])
        #expect(lifecycle.state == state)
    }
}

@Suite struct BuiltinHandlerRules {
    @Test func echoAnswersTheBodyOrTheTag() {
        #expect(BuiltinHandler.echo.respond(path: "/", query: [:], body: [1, 0, 2], tag: "t", options: [:], random: 0).body == [1, 0, 2])
        #expect(BuiltinHandler.echo.respond(path: "/", query: [:], body: [], tag: "api#1", options: [:], random: 0).body == Array("api#1\n".utf8))
    }

    @Test func sleepTakesItsTimeFromTheQueryThenTheOptions() {
        #expect(BuiltinHandler.sleep.respond(path: "/", query: ["ms": "250"], body: [], tag: "t", options: ["ms": .number(5)], random: 0).delayMs == 250)
        #expect(BuiltinHandler.sleep.respond(path: "/", query: [:], body: [], tag: "t", options: ["ms": .number(5)], random: 0).delayMs == 5)
        #expect(BuiltinHandler.sleep.respond(path: "/", query: [:], body: [], tag: "t", options: [:], random: 0).delayMs == 100)
    }

    @Test func failFailsWithItsProbability() {
        #expect(BuiltinHandler.fail.respond(path: "/", query: ["p": "0.3"], body: [], tag: "t", options: [:], random: 0.29).status == 500)
        #expect(BuiltinHandler.fail.respond(path: "/", query: ["p": "0.3"], body: [], tag: "t", options: [:], random: 0.3).status == 200)
        #expect(BuiltinHandler.fail.respond(path: "/", query: [:], body: [], tag: "t", options: ["probability": .number(1)], random: 0.99).status == 500)
    }

    @Test func queriesSplitFromPaths() {
        #expect(BuiltinHandler.split("/a/b?ms=5&x") == ("/a/b", ["ms": "5", "x": ""]))
        #expect(BuiltinHandler.split("/plain") == ("/plain", [:]))
    }
}

@Suite struct ProgramEnvironmentRules {
    @Test func aProgramGetsNoSwerveVariableOfTheWorkersAndEveryOneOfItsReplicaConfig() {
        let worker = [
            "PATH": "/usr/bin:/bin", "HOME": "/home/swerve", "SWERVE_REDIS_URL": "redis://:secret@10.0.0.5:6379",
            "SWERVE_REDIS_PASSWORD": "secret", "SWERVE_REDIS_PASSWORD_FILE": "/run/secrets/redis", "SWERVE_CLUSTER": "prod",
            "SWERVE_NODE_ID": "n1", "SWERVE_AGENT_PID": "42",
        ]
        let replica = ["APP_MODE": "fast", "PATH": "/opt/app/bin:/usr/bin", "SWERVE_FEATURE": "chosen by the backend's owner"]
        #expect(CommandCode.programEnvironment(worker: worker, replica: replica) == [
            "PATH": "/opt/app/bin:/usr/bin", "HOME": "/home/swerve", "APP_MODE": "fast", "SWERVE_FEATURE": "chosen by the backend's owner",
        ])
    }
}
