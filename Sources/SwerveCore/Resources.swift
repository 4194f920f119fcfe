/// What a replica needs, or what a node has: CPU (fractions allowed), memory in bytes, and
/// named custom resources (e.g. `"gpu": 1`).
public struct Resources: Sendable, Hashable, Codable {
    public var cpu: Double
    public var memoryBytes: Int64
    public var custom: [String: Double]

    public init(cpu: Double = 0, memoryBytes: Int64 = 0, custom: [String: Double] = [:]) {
        self.cpu = cpu
        self.memoryBytes = memoryBytes
        self.custom = custom
    }

    public static let zero = Resources()

    /// Tolerance for sums of fractional amounts (0.1 + 0.2 must fit in 0.3).
    static let epsilon = 1e-9

    /// Sums; memory saturates at `Int64.max` instead of trapping (a node may report anything).
    public static func + (a: Resources, b: Resources) -> Resources {
        Resources(cpu: a.cpu + b.cpu, memoryBytes: a.memoryBytes.addingSaturated(b.memoryBytes), custom: a.custom.merging(b.custom, uniquingKeysWith: +))
    }

    public static func - (a: Resources, b: Resources) -> Resources {
        Resources(cpu: a.cpu - b.cpu, memoryBytes: a.memoryBytes.addingSaturated(b.memoryBytes == .min ? .max : -b.memoryBytes), custom: a.custom.merging(b.custom.mapValues { -$0 }, uniquingKeysWith: +))
    }

    /// Takes `times` × `amount` away, in place (memory saturating, as in `+`).
    mutating func subtract(_ amount: Resources, times: Int) {
        cpu -= amount.cpu * Double(times)
        let taken = amount.memoryBytes.multipliedSaturated(by: Int64(times))
        memoryBytes = memoryBytes.addingSaturated(taken == .min ? .max : -taken)
        for (name, value) in amount.custom { custom[name, default: 0] -= value * Double(times) }
    }

    /// True when `need` fits in these (free) resources.
    public func fits(_ need: Resources) -> Bool {
        guard need.cpu <= cpu + Self.epsilon, need.memoryBytes <= memoryBytes else { return false }
        for (name, amount) in need.custom where amount > 0 {
            guard amount <= (custom[name] ?? 0) + Self.epsilon else { return false }
        }
        return true
    }

    /// The dimensions of `need` these resources lack, in a fixed order: "cpu", "memory", then
    /// custom names sorted.
    func missingDimensions(for need: Resources) -> [String] {
        var missing: [String] = []
        if need.cpu > cpu + Self.epsilon { missing.append("cpu") }
        if need.memoryBytes > memoryBytes { missing.append("memory") }
        for name in need.custom.keys.sorted() where (need.custom[name] ?? 0) > (custom[name] ?? 0) + Self.epsilon {
            missing.append(name)
        }
        return missing
    }

    func amount(_ dimension: String) -> Double {
        switch dimension {
        case "cpu": return cpu
        case "memory": return Double(memoryBytes)
        default: return custom[dimension] ?? 0
        }
    }

    /// "2 CPU", "4 GiB memory", "1 gpu".
    static func describe(_ dimension: String, _ amount: Double) -> String {
        switch dimension {
        case "cpu": return "\(formatNumber(amount)) CPU"
        case "memory": return "\(formatBytes(amount)) memory"
        default: return "\(formatNumber(amount)) \(dimension)"
        }
    }
}

public func formatNumber(_ value: Double) -> String {
    if value == value.rounded() && abs(value) < 1e15 { return String(Int64(value)) }
    let rounded = (value * 1000).rounded() / 1000
    return String(rounded)
}

func formatBytes(_ bytes: Double) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var value = bytes
    var unit = 0
    while abs(value) >= 1024 && unit < units.count - 1 {
        value /= 1024
        unit += 1
    }
    return "\(formatNumber((value * 10).rounded() / 10)) \(units[unit])"
}
