import ArgumentParser

/// `swerve-ops chaos`: see ops/chaos.
struct ChaosCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "chaos", abstract: "Break a local cluster on a schedule and check it held.")
    func run() async throws {}
}
