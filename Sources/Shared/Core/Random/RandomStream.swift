import RealModule

/// A seedable pseudo-random stream (xoshiro256**, seeded through SplitMix64).
///
/// Everything random in MedMAML (initialisation, task sampling, image synthesis,
/// augmentation) draws from one of these, keyed by what it is for, so the same key gives
/// the same numbers on every machine and thread. Floating-point draws are built from the
/// raw bits here rather than through the standard library, whose conversions may change
/// between toolchains.
public struct RandomStream: RandomNumberGenerator, Sendable, Codable, Hashable {
    private var s0, s1, s2, s3: UInt64

    /// A stream for `seed`, separated from other uses of the same seed by `stream`.
    public init(seed: UInt64, stream: UInt64 = 0) {
        var sm = SplitMix64(state: seed ^ (stream &* 0x9E37_79B9_7F4A_7C15))
        s0 = sm.next(); s1 = sm.next(); s2 = sm.next(); s3 = sm.next()
        if s0 | s1 | s2 | s3 == 0 { s0 = 1 }
    }

    /// A stream keyed by several values (for example seed, task hash, sample index).
    public init(key: [UInt64]) {
        var h: UInt64 = 0x6A09_E667_F3BC_C908
        for k in key {
            var sm = SplitMix64(state: h ^ k)
            h = sm.next()
        }
        self.init(seed: h)
    }

    public mutating func next() -> UInt64 {
        let result = rotl(s1 &* 5, 7) &* 9
        let t = s1 << 17
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3
        s2 ^= t
        s3 = rotl(s3, 45)
        return result
    }

    @inline(__always)
    private func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    /// Uniform in [0, 1) with 24 random bits.
    public mutating func unit() -> Float { Float(next() >> 40) * 0x1p-24 }

    /// Uniform in [0, 1) with 53 random bits.
    public mutating func unitDouble() -> Double { Double(next() >> 11) * 0x1p-53 }

    /// Uniform in [low, high).
    public mutating func uniform(_ low: Float, _ high: Float) -> Float { low + (high - low) * unit() }

    public mutating func uniformDouble(_ low: Double, _ high: Double) -> Double {
        low + (high - low) * unitDouble()
    }

    /// Uniform integer in 0..<bound (bound > 0), without modulo bias.
    public mutating func below(_ bound: Int) -> Int {
        precondition(bound > 0, "bound must be positive")
        let b = UInt64(bound)
        let threshold = (0 &- b) % b
        while true {
            let r = next()
            if r >= threshold { return Int(r % b) }
        }
    }

    /// Standard normal (Box-Muller).
    public mutating func normal() -> Double {
        let u1 = max(unitDouble(), 0x1p-60), u2 = unitDouble()
        return (-2 * Double.log(u1)).squareRoot() * Double.cos(2 * Double.pi * u2)
    }

    /// Bernoulli draw with probability `p`.
    public mutating func chance(_ p: Double) -> Bool { unitDouble() < p }

    /// A deterministic Fisher-Yates shuffle.
    public mutating func shuffle<T>(_ array: inout [T]) {
        guard array.count > 1 else { return }
        for i in stride(from: array.count - 1, to: 0, by: -1) {
            array.swapAt(i, below(i + 1))
        }
    }
}

/// SplitMix64 (Steele, Lea and Flood, 2014): seeds other generators.
public struct SplitMix64: Sendable {
    public var state: UInt64
    public init(state: UInt64) { self.state = state }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A stable 64-bit FNV-1a hash of a string (for keying random streams by names).
public func stableHash(_ text: String) -> UInt64 {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    for byte in text.utf8 {
        h ^= UInt64(byte)
        h = h &* 0x100_0000_01B3
    }
    return h
}
