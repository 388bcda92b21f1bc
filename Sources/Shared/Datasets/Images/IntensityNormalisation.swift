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
            func percentile(_ p: Double) -> Float {
                Self.element(ofRank: min(values.count - 1, max(0, Int((p / 100 * Double(values.count - 1)).rounded()))), in: values)
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

    /// The value at position `rank` of `values` in ascending order (what `values.sorted()[rank]`
    /// gives, for finite values), by a radix select on the values' ordered bit patterns: two
    /// passes and two 65536-bucket histograms, no sorted copy, so a large volume is normalised
    /// in memory independent of its size.
    public static func element(ofRank rank: Int, in values: [Float]) -> Float {
        precondition(rank >= 0 && rank < values.count, "rank out of range")
        // Order-preserving map of a float's bits to an unsigned integer (negative numbers flip).
        @inline(__always) func key(_ v: Float) -> UInt32 {
            let b = v.bitPattern
            return b & 0x8000_0000 != 0 ? ~b : b | 0x8000_0000
        }
        var high = [Int](repeating: 0, count: 1 << 16)
        for v in values { high[Int(key(v) >> 16)] += 1 }
        var remaining = rank, bucket = 0
        while remaining >= high[bucket] { remaining -= high[bucket]; bucket += 1 }
        var low = [Int](repeating: 0, count: 1 << 16)
        for v in values where Int(key(v) >> 16) == bucket { low[Int(key(v) & 0xFFFF)] += 1 }
        var l = 0
        while remaining >= low[l] { remaining -= low[l]; l += 1 }
        let k = UInt32(bucket) << 16 | UInt32(l)
        let bits = k & 0x8000_0000 != 0 ? k & 0x7FFF_FFFF : ~k
        return Float(bitPattern: bits)
    }
}
