import Dispatch
import FoundationEssentials
import Glibc
public import Logging
import SwerveCore
import SwerveErrors
import SwerveHTTP
import SwerveProtocol
import SwerveRedis
import SwerveSystem

/// `swerve worker`: one replica. Reads its assignment, serves its code, reports ready with a
/// heartbeat, follows drain and config requests, and exits — 0 once drained, 1 when its node
/// agent is gone — as `docs/PROTOCOL.md` describes.
///
/// Runs a built-in handler (``BuiltinHandler``) or a command, or — through the SDK entry point
/// ``run(_:logger:service:)`` — any ``ReplicaService``.
public enum Worker {
    enum Event: Sendable {
        case tick
        case requestFinished
        case control(ControlMessage?)
        case pollNow
        /// The control channel was (re)subscribed: Redis may have restarted or failed over.
        case resubscribed
        /// SIGTERM (the node agent is shutting down): drain as if asked to, within 10 s.
        case terminate
    }

    /// Runs the replica its assignment describes: a built-in handler or a command.
    public static func run(_ configuration: WorkerConfiguration, logger: Logger) async throws -> Int32 {
        try await run(configuration, logger: logger, service: defaultService)
    }

    /// The SDK's entry point: runs the service `makeService` starts as the replica, and speaks
    /// the protocol for it. Returns the exit code: 0 once drained, 1 when the node agent is
    /// gone or the service stopped on its own.
    public static func run(
        _ configuration: WorkerConfiguration,
        logger baseLogger: Logger,
        service makeService: @Sendable (ReplicaContext) async throws -> any ReplicaService
    ) async throws -> Int32 {
        let logger = {
            var logger = baseLogger
            logger[metadataKey: "replica"] = "\(configuration.tag)"
            return logger
        }()
        let keys = configuration.keys
        let tag = configuration.tag
        let client = RedisClient(configuration: configuration.redis, logger: logger)
        defer { client.close() }

        let assignmentKey = keys.assignments(configuration.nodeID)
        guard let raw = try await client.send("HGET", assignmentKey, tag).bytes else {
            throw WorkerError(.badAssignment, "swerve worker: no assignment for \(tag) in \(assignmentKey)")
        }
        let assignment: AssignmentDocument
        do {
            assignment = try DocumentCodec.decode(AssignmentDocument.self, from: raw, source: "\(assignmentKey) field \(tag)")
        } catch {
            throw WorkerError(.badAssignment, "swerve worker: \(error.message)")
        }
        let startedAt = wallClockNow()

        let (events, continuation) = AsyncStream.makeStream(of: Event.self)
        let termination = handleTermination { continuation.yield(.terminate) }
        defer { termination.cancel() }

        let code = try await makeService(ReplicaContext(assignment: assignment, host: configuration.nodeAddress, tag: tag,
                                                        requestFinished: { continuation.yield(.requestFinished) }, logger: logger))
        let ready = ReadyRecord(tag: tag, backend: assignment.backend, node: configuration.nodeID, version: assignment.version,
                                address: HostPort(host: configuration.nodeAddress, port: UInt16(code.port)), pid: getpid(), startedAt: startedAt, readyAt: wallClockNow())

        return await withTaskGroup(of: Void.self) { group in
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: .milliseconds(100))
                    continuation.yield(.tick)
                }
            }
            group.addTask {
                let subscriber = RedisSubscriber(configuration: configuration.redis, logger: logger)
                try? await subscriber.subscribe(to: [keys.control(tag)]) { subscription in
                    var subscribedBefore = false
                    for await event in subscription {
                        switch event {
                        case .subscribed:
                            continuation.yield(subscribedBefore ? .resubscribed : .pollNow)
                            subscribedBefore = true
                        case .mayHaveMissedMessages: continuation.yield(.pollNow)
                        case .message(let message): continuation.yield(.control(try? DocumentCodec.decode(ControlMessage.self, from: message.payload, source: keys.control(tag))))
                        case .disconnected: break
                        }
                    }
                }
            }
            defer { group.cancelAll() }

            var run = WorkerRun(configuration: configuration, assignment: assignment, ready: ready, client: client, code: code, logger: logger)
            if let code = await run.perform(run.lifecycle.codeBecameReady()) { return code }
            // The end of a drain's wait loop comes on a timer of its own, not at the next tick:
            // a scale-down ends when its wait loop does.
            var timer: (deadline: Timestamp, task: Task<Void, Never>)?
            defer { timer?.task.cancel() }
            for await event in events {
                if let code = await run.handle(event) { return code }
                if let deadline = run.lifecycle.nextDeadline, timer?.deadline != deadline {
                    timer?.task.cancel()
                    timer = (deadline, Task {
                        // Only once the deadline has passed by the wall clock the lifecycle
                        // reads (a tick before it would do nothing, and this timer is not armed
                        // again for the same deadline).
                        while case let wait = deadline.milliseconds - wallClockMilliseconds(), wait >= 0 {
                            do { try await Task.sleep(for: .milliseconds(wait + 1)) } catch { return }
                        }
                        continuation.yield(.tick)
                    })
                }
            }
            return 1
        }
    }


    /// Starts what the assignment asks for: a built-in handler, or a command it waits for
    /// until it serves (the leader's start timeout bounds how long that may take).
    @Sendable static func defaultService(_ context: ReplicaContext) async throws -> any ReplicaService {
        let tag = context.tag
        switch context.assignment.replicaConfig.workload {
        case .builtin(let name, let options):
            guard let handler = BuiltinHandler(rawValue: name) else {
                throw WorkerError(.badAssignment, "swerve worker: unknown built-in handler \"\(name)\" (known: echo, sleep, fail)")
            }
            let state = BuiltinServerState(handler: handler, tag: tag, options: options, userConfig: context.assignment.userConfig,
                                           requestFinished: context.requestFinished)
            return try await BuiltinServer.start(host: context.host, state: state,
                                                 setup: ConnectionSetup(server: "worker", logger: context.logger))
        case .command(let arguments, let environment, let healthPath):
            guard !arguments.isEmpty else { throw WorkerError(.badAssignment, "swerve worker: the command of \(tag) is empty") }
            let command = try CommandCode.start(arguments: arguments, environment: environment, healthPath: healthPath,
                                                host: context.host, tag: tag, userConfig: context.assignment.userConfig)
            while await !command.probe() {
                if let status = command.exitStatus() {
                    throw WorkerError(.startFailed, "swerve worker: the command of \(tag) exited before it was ready (\(status))")
                }
                try await Task.sleep(for: .milliseconds(20))
            }
            return command
        }
    }
}

/// The worker's mutable state between events, and how it carries out lifecycle actions.
struct WorkerRun {
    let configuration: WorkerConfiguration
    let assignment: AssignmentDocument
    let ready: ReadyRecord
    let client: RedisClient
    let code: any ReplicaService
    let logger: Logger
    var lifecycle = WorkerLifecycle()
    var lastProbe = ContinuousClock.now
    /// The user config last handed to the code (the assignment's at first).
    lazy var appliedUserConfig: JSONValue? = assignment.userConfig
    var lastPoll = ContinuousClock.now

    var keys: ClusterKeys { configuration.keys }
    var tag: String { configuration.tag }

    /// Handles one event; returns the exit code when the worker must exit.
    mutating func handle(_ event: Worker.Event) async -> Int32? {
        switch event {
        case .tick:
            if let agent = configuration.agentPID, getppid() != agent {
                logger.error("node agent \(agent) is gone; exiting")
                await code.stopAccepting()
                code.abandon()
                return 1
            }
            let now = ContinuousClock.now
            if let status = code.exitStatus() {
                return await codeExited(status)
            }
            if lifecycle.state == .ready, now - lastProbe >= .seconds(1) {
                lastProbe = now
                let healthy = await code.isHealthy()
                if healthy != lifecycle.healthy { logger.warning(healthy ? "healthy again: ready" : "unhealthy: retracting the ready record") }
                if let code = await perform(lifecycle.healthProbed(healthy: healthy)) { return code }
            }
            if now - lastPoll >= configuration.controlPollInterval {
                if let code = await poll() { return code }
            }
            return await perform(lifecycle.timePassed(now: wallClockNow(), inFlight: code.requestsInFlight ?? 0))
        case .requestFinished:
            return await perform(lifecycle.timePassed(now: wallClockNow(), inFlight: code.requestsInFlight ?? 0))
        case .control, .pollNow:
            return await poll()
        case .resubscribed:
            if let code = await perform(lifecycle.reconnected()) { return code }
            return await poll()
        case .terminate:
            logger.info("SIGTERM: draining")
            return await perform(lifecycle.drainRequested(now: wallClockNow(), waitLoopS: assignment.gracefulShutdownWaitLoopS,
                                                          deadline: wallClockNow().adding(milliseconds: 10_000), inFlight: code.requestsInFlight ?? 0))
        }
    }

    /// The code stopped: while stopping, that completes the drain; otherwise the replica is
    /// dead, and the worker exits so its node agent records it.
    mutating func codeExited(_ status: String) async -> Int32? {
        if lifecycle.state == .stoppingCode {
            logger.info("its code stopped", metadata: ["status": "\(status)"])
            return await perform(lifecycle.codeStopped())
        }
        logger.error("its code exited", metadata: ["status": "\(status)"])
        _ = try? await client.pipeline(retractReady)
        return 1
    }

    /// Reads the drain and config keys and, while ready and healthy, writes the ready record
    /// if it is missing (`SET NX`: Redis lost it) — one round trip — and acts on them.
    mutating func poll() async -> Int32? {
        lastPoll = ContinuousClock.now
        var commands = [RedisCommand("MGET", keys.drain(tag), keys.userConfig(tag))]
        let reassert = lifecycle.holdsReadyRecord
        if reassert { commands.append(RedisCommand("SET", keys.ready(tag), DocumentCodec.encode(ready), "NX")) }
        let replies: [RedisReply]
        do {
            replies = try await client.pipeline(commands)
            _ = try replies[0].throwingServerError(for: "MGET")
        } catch {
            logger.warning("cannot read control keys", metadata: ["error": "\(error.message)"])
            return nil
        }
        if reassert, replies[1] == .simpleString("OK") {
            logger.warning("the ready record was missing (Redis lost it): written again")
            _ = try? await client.pipeline([RedisCommand("SADD", keys.changedReplicas, tag),
                                            RedisCommand("PUBLISH", keys.wake, DocumentCodec.encode(WakeUp(event: .ready, subject: tag)))])
        }
        let values = replies[0].array ?? []
        let drainBytes = values.first?.bytes
        if let bytes = values.count > 1 ? values[1].bytes : nil {
            do {
                let document = try DocumentCodec.decode(UserConfigDocument.self, from: bytes, source: keys.userConfig(tag))
                if document.userConfig != appliedUserConfig {
                    appliedUserConfig = document.userConfig
                    await code.userConfigChanged(document.userConfig)
                    logger.info("user config updated")
                }
            } catch {
                logger.error("ignoring a bad user config", metadata: ["error": "\(error.message)"])
            }
        }
        guard let bytes = drainBytes else { return nil }
        do {
            let drain = try DocumentCodec.decode(DrainRequest.self, from: bytes, source: keys.drain(tag))
            let actions = lifecycle.drainRequested(now: wallClockNow(), waitLoopS: assignment.gracefulShutdownWaitLoopS,
                                                   deadline: drain.deadline, force: drain.force, inFlight: code.requestsInFlight ?? 0)
            if !actions.isEmpty || lifecycle.state != .ready { logger.info("draining", metadata: ["deadline": "\(drain.deadline)"]) }
            return await perform(actions)
        } catch {
            logger.error("ignoring a bad drain request", metadata: ["error": "\(error.message)"])
            return nil
        }
    }

    /// Deletes the ready record, marks the replica changed, wakes the leader.
    var retractReady: [RedisCommand] {
        [RedisCommand("DEL", keys.ready(tag)), RedisCommand("SADD", keys.changedReplicas, tag),
         RedisCommand("PUBLISH", keys.wake, DocumentCodec.encode(WakeUp(event: .unhealthy, subject: tag)))]
    }

    /// Carries out lifecycle actions; returns the exit code when the worker is done.
    mutating func perform(_ actions: [WorkerLifecycle.Action]) async -> Int32? {
        for action in actions {
            switch action {
            case .writeReady(let announce):
                let commands = [RedisCommand("SET", keys.ready(tag), DocumentCodec.encode(ready)),
                                RedisCommand("SADD", keys.changedReplicas, tag),
                                RedisCommand("PUBLISH", keys.wake, DocumentCodec.encode(WakeUp(event: .ready, subject: tag)))]
                do {
                    _ = try await client.pipeline(commands)[0].throwingServerError(for: "SET")
                    if announce { logger.info("ready", metadata: ["address": "\(ready.address)"]) }
                } catch {
                    // Written again when the worker reconnects; until then the leader's start
                    // timeout (or, once running, nothing) decides.
                    logger.warning("cannot write the ready key", metadata: ["error": "\(error.message)"])
                }
            case .retractReady:
                do {
                    _ = try await client.pipeline(retractReady)[0].throwingServerError(for: "DEL")
                } catch {
                    logger.warning("cannot retract the ready key", metadata: ["error": "\(error.message)"])
                }
            case .stopAccepting:
                await code.stopAccepting()
                logger.info("stopped accepting new connections")
            case .stopCode:
                logger.info("stopping its code")
                await code.stop()
                // The code reports that it stopped through exitStatus(), checked now and every tick.
                if let status = code.exitStatus() { return await codeExited(status) }
            case .finishDrain:
                let commands = [
                    RedisCommand("SET", keys.drained(tag), DocumentCodec.encode(DrainedRecord(tag: tag, drainedAt: wallClockNow())), "EX", 3600),
                    RedisCommand("DEL", keys.ready(tag)),
                    RedisCommand("SADD", keys.changedReplicas, tag),
                    RedisCommand("PUBLISH", keys.wake, DocumentCodec.encode(WakeUp(event: .drained, subject: tag))),
                ]
                do {
                    _ = try await client.pipeline(commands)[0].throwingServerError(for: "SET")
                } catch {
                    logger.error("cannot write the drained key", metadata: ["error": "\(error.message)"])
                    return 1
                }
                logger.info("drained; exiting")
                return 0
            }
        }
        return nil
    }
}

