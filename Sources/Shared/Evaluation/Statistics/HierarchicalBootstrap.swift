import Core

/// A confidence interval for a mean over nested groups (training seeds, then task types,
/// then instances) by the hierarchical bootstrap: each resample draws seeds with replacement,
/// then task types within each drawn seed, then instances within each drawn type, and takes
/// the mean; the interval is the 2.5th and 97.5th percentiles of those means. Seed-to-seed and
/// type-to-type variation both widen it, which an interval over the instances of one trained
/// model misses (Davison and Hinkley, 1997, section 3.8). Deterministic for a given `seed`.
public enum HierarchicalBootstrap {
    public struct Interval: Codable, Sendable, Equatable {
        /// The mean over seeds of the mean over types of the mean over instances.
        public var mean: Double
        public var lower: Double
        public var upper: Double
        /// The mean of each seed.
        public var perSeed: [Double]

        /// Whether the interval lies above zero, below it, or includes it.
        public var verdict: String { lower > 0 ? "above zero" : (upper < 0 ? "below zero" : "includes zero") }
    }

    /// `values[seed][type]` holds the instances' values; empty groups are left out.
    public static func interval(_ values: [[[Double]]], resamples: Int = 2000, seed: UInt64 = 0x626F_6F74) -> Interval {
        let groups = values.map { $0.filter { !$0.isEmpty } }.filter { !$0.isEmpty }
        func mean(_ v: [Double]) -> Double { v.isEmpty ? .nan : v.reduce(0, +) / Double(v.count) }
        let perSeed = groups.map { types in mean(types.map(mean)) }
        let overall = mean(perSeed)
        guard groups.count > 0 else { return Interval(mean: .nan, lower: .nan, upper: .nan, perSeed: []) }
        var rng = RandomStream(key: [seed, UInt64(groups.count)])
        var means: [Double] = []
        means.reserveCapacity(resamples)
        for _ in 0..<resamples {
            var total = 0.0
            for _ in groups.indices {
                let types = groups[rng.below(groups.count)]
                var seedTotal = 0.0
                for _ in types.indices {
                    let instances = types[rng.below(types.count)]
                    var typeTotal = 0.0
                    for _ in instances.indices { typeTotal += instances[rng.below(instances.count)] }
                    seedTotal += typeTotal / Double(instances.count)
                }
                total += seedTotal / Double(types.count)
            }
            means.append(total / Double(groups.count))
        }
        means.sort()
        return Interval(mean: overall, lower: means[Int(0.025 * Double(resamples - 1))], upper: means[Int(0.975 * Double(resamples - 1))],
                        perSeed: perSeed)
    }
}
