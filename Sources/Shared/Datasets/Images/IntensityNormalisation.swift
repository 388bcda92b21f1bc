/// Intensity normalisation, per volume (or per image for PNG folders).
public enum IntensityNormalisation: Codable, Hashable, Sendable {
    /// Clip to the [low, high] percentiles, then zero mean and unit variance.
    case zscore(lowPercentile: Double, highPercentile: Double)
    /// A CT window (Hounsfield units), mapped to [0, 1], then zero mean and unit variance.
    case ctWindow(level: Double, width: Double)

    public static let standard = IntensityNormalisation.zscore(lowPercentile: 0.5, highPercentile: 99.5)

    /// Normalises `values` in place.
    public func apply(_ values: inout [Float]) {
        guard !values.isEmpty else { return }
        switch self {
        case .zscore(let lo, let hi):
            let sorted = values.sorted()
            func percentile(_ p: Double) -> Float {
                sorted[min(sorted.count - 1, max(0, Int((p / 100 * Double(sorted.count - 1)).rounded())))]
            }
            let a = percentile(lo), b = percentile(hi)
            for i in values.indices { values[i] = min(max(values[i], a), b) }
        case .ctWindow(let level, let width):
            let a = Float(level - width / 2), w = Float(max(width, 1e-6))
            for i in values.indices { values[i] = min(max((values[i] - a) / w, 0), 1) }
        }
        var mean: Double = 0
        for v in values { mean += Double(v) }
        mean /= Double(values.count)
        var variance: Double = 0
        for v in values { variance += (Double(v) - mean) * (Double(v) - mean) }
        let std = max((variance / Double(values.count)).squareRoot(), 1e-6)
        for i in values.indices { values[i] = Float((Double(values[i]) - mean) / std) }
    }
}
