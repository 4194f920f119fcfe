import ArgumentParser
import Foundation
import Yams

/// How `get` and `events` print: aligned columns (`table`, `wide` adds columns), or every
/// field as `json` or `yaml` for scripts.
enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case table, wide, json, yaml
}

/// Columns padded to their widest cell, two spaces apart, headers in capitals (like kubectl).
struct Table {
    var header: [String]
    var rows: [[String]] = []

    func render() -> String {
        let all = [header] + rows
        let widths = header.indices.map { column in all.map { $0.indices.contains(column) ? $0[column].count : 0 }.max() ?? 0 }
        return all.map { row in
            row.enumerated().map { index, cell in
                index == row.count - 1 ? cell : cell.padding(toLength: widths[index] + 2, withPad: " ", startingAt: 0)
            }.joined()
        }.joined(separator: "\n")
    }
}

/// Prints `value` as JSON (sorted keys) or YAML.
func printEncoded(_ value: some Encodable, as format: OutputFormat) throws {
    switch format {
    case .json:
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        print(String(decoding: try encoder.encode(value), as: UTF8.self))
    case .yaml:
        let encoder = YAMLEncoder()
        encoder.options.sortKeys = true
        print(try encoder.encode(value), terminator: "")
    case .table, .wide:
        break
    }
}

/// An age as kubectl shows it: `45s`, `12m`, `3h`, `2d`; `-` when unknown.
func age(sinceMilliseconds start: Int64?, now: Int64 = Int64(Date().timeIntervalSince1970 * 1000)) -> String {
    guard let start else { return "-" }
    let seconds = max(0, (now - start) / 1000)
    switch seconds {
    case ..<120: return "\(seconds)s"
    case ..<7200: return "\(seconds / 60)m"
    case ..<172_800: return "\(seconds / 3600)h"
    default: return "\(seconds / 86400)d"
    }
}
