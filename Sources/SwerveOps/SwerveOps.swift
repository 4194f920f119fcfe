import ArgumentParser

/// `swerve-ops`: runs whole clusters on loopback for people and CI — `up` (what `ops/up`
/// runs) and `chaos` (what `ops/chaos` runs).
@main
struct SwerveOps: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "swerve-ops",
        abstract: "Run a local Swerve cluster (up) or break one on purpose and check it (chaos).",
        subcommands: [UpCommand.self, ChaosCommand.self]
    )
}
