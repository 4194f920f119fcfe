import ArgumentParser
import SwerveCore

/// `swerve`: the one binary. Each subcommand parses its flags and calls into the modules.
@main
struct SwerveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "swerve",
        abstract: "A highly available serving control plane whose only shared state is Redis.",
        discussion: """
            Controllers contend for a Redis lease and the leader keeps backends running as
            replicas on nodes; routers proxy HTTP to the running replicas.

            Example:
              swerve version
            """,
        version: Swerve.version,
        subcommands: [ApplyCommand.self, GetCommand.self, DescribeCommand.self, EventsCommand.self, ScaleCommand.self, DeleteCommand.self,
                      WaitCommand.self, StatusCommand.self, LeaderCommand.self, HealthCommand.self,
                      ControllerCommand.self, RouterCommand.self, NodeCommand.self, DashboardCommand.self, WorkerCommand.self, AclCommand.self, Version.self]
    )
}

struct Version: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print Swerve's version.",
        discussion: """
            Example:
              swerve version          # prints e.g. "swerve 0.1.0"
            """
    )

    func run() {
        print("swerve \(Swerve.version)")
    }
}
