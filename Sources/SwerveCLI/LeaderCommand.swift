import ArgumentParser
import Foundation
import Logging
import SwerveClient
import SwerveCore
import SwerveErrors
import SwerveProtocol
import SwerveRedis
import SwerveSystem

/// `swerve leader`: which controller leads, under which epoch, and for how long.
struct LeaderCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "leader",
        abstract: "Show the controller that leads the cluster (exit 3 when none does).",
        discussion: """
            Example:
              swerve leader                 # controller-2  epoch 14  on host-b (pid 4121), leading for 3m12s
              swerve leader --json | jq .epoch
            """
    )

    @OptionGroup var cluster: ClusterOptions

    @Flag(help: "Print JSON (id, epoch, host, pid, address, since, leadingForMs).")
    var json = false

    func run() async throws {
        let client = try cluster.clusterClient()
        let found: LeaderRecord?
        do {
            found = try await client.leader()
        } catch let error as RedisError {
            throw CLIError(error.message)
        } catch let error as ProtocolError {
            throw CLIError(error.message)
        }
        guard let record = found else {
            FileHandle.standardError.write(Data("no controller leads cluster \"\(cluster.cluster)\"\n".utf8))
            throw ExitCode(3)
        }
        let leadingFor = max(0, wallClockMilliseconds() - record.since.milliseconds)
        if json {
            var object: [String: Any] = ["id": record.id, "epoch": record.epoch, "host": record.host, "pid": record.pid,
                                         "since": record.since.milliseconds, "leadingForMs": leadingFor]
            if let address = record.address { object["address"] = address }
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            let address = record.address.map { ", metrics at \($0)" } ?? ""
            print("\(record.id)  epoch \(record.epoch)  on \(record.host) (pid \(record.pid)\(address)), leading for \(Self.human(leadingFor))")
        }
    }

    /// "850ms", "12s", "3m12s", "2h05m".
    static func human(_ ms: Int64) -> String {
        if ms < 1000 { return "\(ms)ms" }
        let seconds = ms / 1000
        if seconds < 60 { return "\(seconds)s" }
        if seconds < 3600 { return "\(seconds / 60)m\(String(format: "%02d", seconds % 60))s" }
        return "\(seconds / 3600)h\(String(format: "%02d", seconds / 60 % 60))m"
    }
}
