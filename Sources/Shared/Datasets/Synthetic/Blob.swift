import Core
import RealModule

/// A star-shaped blob: r(phi) = radius (1 + sum_k a_k cos(k phi + p_k)), stretched by
/// `aspect` and rotated; coordinates are normalised to [0, 1] across the image.
struct Blob {
    var cx: Float
    var cy: Float
    var radius: Float
    var aspect: Float = 1
    var rotation: Float = 0
    var harmonics: [(amplitude: Float, phase: Float)] = []

    /// A random smooth blob; `roughness` scales the harmonic amplitudes.
    static func random(cx: Float, cy: Float, radius: Float, roughness: Float, rng: inout RandomStream) -> Blob {
        var b = Blob(cx: cx, cy: cy, radius: radius)
        b.aspect = rng.uniform(0.7, 1.35)
        b.rotation = rng.uniform(0, 2 * .pi)
        b.harmonics = (2...5).map { k in
            (roughness * rng.uniform(0, 1) / Float(k - 1), rng.uniform(0, 2 * .pi))
        }
        return b
    }

    /// Radial coordinate of normalised point (u, v): < 1 inside, 1 on the boundary.
    @inline(__always)
    func level(_ u: Float, _ v: Float) -> Float {
        level(u, v, c: Float.cos(rotation), s: Float.sin(rotation))
    }

    @inline(__always)
    func level(_ u: Float, _ v: Float, c: Float, s: Float) -> Float {
        let dx = u - cx, dy = v - cy
        let rx = (c * dx + s * dy) / aspect, ry = (-s * dx + c * dy) * aspect
        let phi = Float.atan2(y: ry, x: rx)
        var r: Float = 1
        for (k, h) in harmonics.enumerated() { r += h.amplitude * Float.cos(Float(k + 2) * phi + h.phase) }
        return (rx * rx + ry * ry).squareRoot() / (radius * max(r, 0.2))
    }

    /// `level` with the harmonics read algebraically from the point's direction: cos(k phi + p)
    /// from (cos phi, sin phi) = (rx, ry) / |r| by complex powers, with no arctangent or
    /// cosine per pixel (several times faster). The same shape up to rounding, so a pixel on
    /// the boundary may fall the other way: the task universe paints with it, the synthetic
    /// family keeps `level` and its images.
    @inline(__always)
    func algebraicLevel(_ u: Float, _ v: Float, c: Float, s: Float, phases: [(cos: Float, sin: Float)]) -> Float {
        let dx = u - cx, dy = v - cy
        let rx = (c * dx + s * dy) / aspect, ry = (-s * dx + c * dy) * aspect
        let rho = (rx * rx + ry * ry).squareRoot()
        guard rho > 0 else { return 0 }
        let c1 = rx / rho, s1 = ry / rho
        var ck = c1, sk = s1, r: Float = 1
        for (k, h) in harmonics.enumerated() {
            (ck, sk) = (ck * c1 - sk * s1, sk * c1 + ck * s1)
            r += h.amplitude * (ck * phases[k].cos - sk * phases[k].sin)
        }
        return rho / (radius * max(r, 0.2))
    }

    /// The largest distance from the centre the blob can reach (for bounding boxes).
    var reach: Float {
        radius * max(aspect, 1 / aspect) * (1 + harmonics.reduce(0) { $0 + abs($1.amplitude) })
    }

    /// Calls `body(index, level)` for every pixel whose level is below `limit` (with
    /// `algebraic`, the level from `algebraicLevel`).
    func forEachPixel(height: Int, width: Int, limit: Float = 1, algebraic: Bool = false, _ body: (Int, Float) -> Void) {
        let r = reach * limit
        let y0 = max(0, Int(((cy - r) * Float(height)).rounded(.down))), y1 = min(height - 1, Int(((cy + r) * Float(height)).rounded(.up)))
        let x0 = max(0, Int(((cx - r) * Float(width)).rounded(.down))), x1 = min(width - 1, Int(((cx + r) * Float(width)).rounded(.up)))
        guard y0 <= y1, x0 <= x1 else { return }
        let c = Float.cos(rotation), s = Float.sin(rotation)
        let phases = harmonics.map { (cos: Float.cos($0.phase), sin: Float.sin($0.phase)) }
        for y in y0...y1 {
            let v = (Float(y) + 0.5) / Float(height)
            for x in x0...x1 {
                let u = (Float(x) + 0.5) / Float(width)
                let l = algebraic ? algebraicLevel(u, v, c: c, s: s, phases: phases) : level(u, v, c: c, s: s)
                if l < limit { body(y * width + x, l) }
            }
        }
    }
}
