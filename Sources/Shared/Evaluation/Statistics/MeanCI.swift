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
