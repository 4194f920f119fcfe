import ArgumentParser

/// `swerve-ops`: runs whole clusters for people and CI — `up` (what `ops/up` runs), `chaos`
/// (what `ops/chaos` runs) and `compose` (what `ops/compose-test` runs).
@main
struct SwerveOps: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "swerve-ops",
        abstract: "Run a local Swerve cluster (up), break one on purpose and check it (chaos), or check the compose deployment (compose).",
        subcommands: [UpCommand.self, ChaosCommand.self, ComposeCommand.self, FuzzCommand.self, SimCommand.self]
    )
}
