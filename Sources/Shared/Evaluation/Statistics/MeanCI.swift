import RealModule

/// A mean with its 95% confidence interval (normal approximation over instances, with the
/// Student t quantile for small samples).
public struct MeanCI: Codable, Sendable, Equatable, CustomStringConvertible {
    public var mean: Double
    public var halfWidth: Double
    public var count: Int

    public init(_ values: [Double]) {
        count = values.count
        guard !values.isEmpty else { mean = .nan; halfWidth = .nan; return }
        let m = values.reduce(0, +) / Double(values.count)
        mean = m
        guard values.count > 1 else { halfWidth = .nan; return }
        let variance = values.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(values.count - 1)
        halfWidth = Self.t975(values.count - 1) * (variance / Double(values.count)).squareRoot()
    }

    public var lower: Double { mean - halfWidth }
    public var upper: Double { mean + halfWidth }
    public var description: String { String(format: "%.3f ± %.3f (n=%d)", mean, halfWidth, count) }

    /// For a paired difference: whether its interval lies above zero, below it, or includes it.
    public var verdict: String { lower > 0 ? "above zero" : (upper < 0 ? "below zero" : "includes zero") }

    /// "+0.020 [-0.011, +0.051]  includes zero": a paired difference as every table prints it.
    public var differenceText: String { String(format: "%+.3f [%+.3f, %+.3f]  ", mean, lower, upper) + verdict }

    // One JSON shape everywhere: mean, ci95 (the half-width), lower, upper and n. Results
    // saved before it (mean, halfWidth, count) still read.
    private enum CodingKeys: String, CodingKey { case mean, ci95, lower, upper, n, halfWidth, count }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(mean, forKey: .mean)
        try c.encode(halfWidth, forKey: .ci95)
        try c.encode(lower, forKey: .lower)
        try c.encode(upper, forKey: .upper)
        try c.encode(count, forKey: .n)
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        mean = try c.decode(Double.self, forKey: .mean)
        halfWidth = try c.decodeIfPresent(Double.self, forKey: .ci95) ?? c.decode(Double.self, forKey: .halfWidth)
        count = try c.decodeIfPresent(Int.self, forKey: .n) ?? c.decode(Int.self, forKey: .count)
    }

    /// The 97.5% quantile of Student's t with `df` degrees of freedom.
    static func t975(_ df: Int) -> Double {
        let table: [Double] = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
                               2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
                               2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]
        if df <= 0 { return .nan }
        if df <= table.count { return table[df - 1] }
        return 1.959964 + 2.37 / Double(df)
    }
}

extension MeanCI {
    /// The mean difference `a - b` over paired values (the same instances scored by two
    /// methods), with its 95% confidence interval: "A beats B" when its lower end is above 0.
    public static func pairedDifference(_ a: [Double], _ b: [Double]) -> MeanCI {
        precondition(a.count == b.count, "paired values come in pairs")
        return MeanCI(zip(a, b).map { $0 - $1 })
    }
}
