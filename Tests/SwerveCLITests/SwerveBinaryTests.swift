import Foundation
import SwerveCore
import Testing

/// Runs the built `swerve` binary (a sibling of the test bundle in the build directory) and
/// returns its exit status and output.
func runSwerve(_ arguments: [String]) throws -> (status: Int32, output: String) {
    let buildDirectory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    let binary = ProcessInfo.processInfo.environment["SWERVE_BINARY"] ?? buildDirectory.appendingPathComponent("swerve").path
    guard FileManager.default.isExecutableFile(atPath: binary) else {
        throw CocoaError(.fileNoSuchFile, userInfo: [NSFilePathErrorKey: binary, NSLocalizedDescriptionKey: "no swerve binary at \(binary): build with `swift build --build-tests` (ops/test does)"])
    }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: binary)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let output = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: output, as: UTF8.self))
}

@Suite struct SwerveBinary {
    @Test func helpDescribesSwerveAndListsVersion() throws {
        let (status, output) = try runSwerve(["--help"])
        #expect(status == 0)
        #expect(output.contains("highly available serving control plane"))
        #expect(output.contains("version"))
    }

    @Test func versionPrintsTheReleaseVersion() throws {
        let (status, output) = try runSwerve(["version"])
        #expect(status == 0)
        #expect(output == "swerve \(Swerve.version)\n")
    }

    @Test func anUnknownSubcommandFailsNamingIt() throws {
        let (status, output) = try runSwerve(["frobnicate"])
        #expect(status != 0)
        #expect(output.contains("frobnicate"))
    }
}
