/// Vectorised reductions with a fixed summation order.
///
/// LLVM does not vectorise a floating-point sum on its own (that would reorder additions),
/// so these keep eight explicit lanes: element i goes to lane i mod 8, lanes are combined
/// in a fixed tree at the end, and the tail is added in order. The result depends only on
/// the data and its length, never on alignment or thread, and is deterministic.

@inline(__always)
func load8<S: EngineScalar>(_ p: UnsafePointer<S>) -> SIMD8<S> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD8<S>.self)
}

@inline(__always)
func store8<S: EngineScalar>(_ v: SIMD8<S>, _ p: UnsafeMutablePointer<S>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<S>.self)
}

@inline(__always)
func horizontalSum<S: EngineScalar>(_ v: SIMD8<S>) -> S {
    ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7]))
}

/// Sum of `count` elements.
@inline(__always)
func sum<S: EngineScalar>(_ x: UnsafePointer<S>, _ count: Int) -> S {
    var acc = SIMD8<S>()
    var i = 0
    while i + 8 <= count {
        acc += load8(x + i)
        i += 8
    }
    var s = horizontalSum(acc)
    while i < count { s += x[i]; i += 1 }
    return s
}

/// Sum of (x - shift)^2.
@inline(__always)
func sumOfSquares<S: EngineScalar>(_ x: UnsafePointer<S>, _ count: Int, shift: S) -> S {
    var acc = SIMD8<S>()
    let m = SIMD8<S>(repeating: shift)
    var i = 0
    while i + 8 <= count {
        let d = load8(x + i) - m
        acc += d * d
        i += 8
    }
    var s = horizontalSum(acc)
    while i < count { let d = x[i] - shift; s += d * d; i += 1 }
    return s
}

/// (sum a, sum a (b - shift)).
@inline(__always)
func sumAndCenteredDot<S: EngineScalar>(
    _ a: UnsafePointer<S>, _ b: UnsafePointer<S>, _ count: Int, shift: S
) -> (S, S) {
    var sa = SIMD8<S>(), sab = SIMD8<S>()
    let m = SIMD8<S>(repeating: shift)
    var i = 0
    while i + 8 <= count {
        let va = load8(a + i)
        sa += va
        sab += va * (load8(b + i) - m)
        i += 8
    }
    var s1 = horizontalSum(sa), s2 = horizontalSum(sab)
    while i < count { s1 += a[i]; s2 += a[i] * (b[i] - shift); i += 1 }
    return (s1, s2)
}
