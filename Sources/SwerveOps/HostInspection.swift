import Foundation
import SwerveProtocol

/// What the chaos harness reads from this host rather than from Redis: the worker processes
/// that exist (to find orphans) and what the controllers' logs say.
enum HostInspection {
    /// Worker processes of `cluster` (their environment names it), with their replica tags.
    static func workerProcesses(cluster: String) -> [(tag: String, pid: Int32)] {
        var found: [(String, Int32)] = []
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(entry), let raw = FileManager.default.contents(atPath: "/proc/\(entry)/environ"),
                  let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8) else { continue }
            // A zombie has exited: it is only waiting to be reaped.
            if let close = stat.lastIndex(of: ")"), stat[stat.index(close, offsetBy: 2)] == "Z" { continue }
            let variables = raw.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            let clusterVariable = WorkerLaunchEnvironment.Variable.cluster + "=", tagVariable = WorkerLaunchEnvironment.Variable.replicaTag + "="
            guard variables.contains(clusterVariable + cluster),
                  let tag = variables.first(where: { $0.hasPrefix(tagVariable) })?.dropFirst(tagVariable.count) else { continue }
            found.append((String(tag), pid))
        }
        return found
    }

    /// How many writes the controllers' logs say the lease refused.
    static func fencedRefusals(in logs: String) -> Int {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: logs)) ?? []
        return files.filter { $0.hasPrefix("controller-") }.reduce(0) { total, file in
            let text = (try? String(contentsOfFile: "\(logs)/\(file)", encoding: .utf8)) ?? ""
            return total + text.components(separatedBy: "write refused under epoch").count - 1
        }
    }
}
