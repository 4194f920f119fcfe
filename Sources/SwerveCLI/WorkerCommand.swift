import ArgumentParser
import Foundation
import Logging
import SwerveErrors
import SwerveSystem
import SwerveWorker

/// `swerve worker`: one replica, started by `swerve node` and configured by its environment.
struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Run one replica (normally started by `swerve node`).",
        discussion: """
            Configured through the environment its node agent sets (see docs/PROTOCOL.md,
            "the worker launch contract"): SWERVE_REDIS_URL, SWERVE_CLUSTER, SWERVE_NODE_ID,
            SWERVE_NODE_ADDRESS, SWERVE_REPLICA_TAG, SWERVE_AGENT_PID. It reads its assignment
            from Redis, serves, reports ready, drains on request and exits 0 once drained
            (1 if its node agent is gone, 2 on bad configuration).

            Example:
              SWERVE_NODE_ID=n1 SWERVE_NODE_ADDRESS=127.0.0.1 SWERVE_REPLICA_TAG='api#k3x9' swerve worker
            """
    )

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        let logger: Logger
        do {
            logger = try ProcessLog.logger("swerve.worker", environment: environment)
        } catch {
            FileHandle.standardError.write(Data("\(error.message)\n".utf8))
            throw ExitCode(2)
        }
        let configuration: WorkerConfiguration
        do {
            configuration = try WorkerConfiguration.fromEnvironment(environment)
        } catch {
            FileHandle.standardError.write(Data("\(error)\n".utf8))
            throw ExitCode(2)
        }
        let code: Int32
        do {
            code = try await Worker.run(configuration, logger: logger)
        } catch {
            FileHandle.standardError.write(Data("\(error)\n".utf8))
            throw ExitCode(2)
        }
        throw ExitCode(code)
    }
}
