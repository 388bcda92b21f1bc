import RealModule

/// A 2D Float field (row-major, height x width) with the few operations image synthesis needs.
struct Field {
    let height: Int
    let width: Int
    var values: [Float]

    init(height: Int, width: Int, value: Float = 0) {
        self.height = height
        self.width = width
        values = [Float](repeating: value, count: height * width)
    }

    subscript(y: Int, x: Int) -> Float {
        get { values[y * width + x] }
        set { values[y * width + x] = newValue }
    }

    /// Smooth random field in about [-1, 1]: a `cells` x `cells` grid of uniform values,
    /// bilinearly interpolated (value noise).
    static func smooth(height: Int, width: Int, cells: Int, rng: inout RandomStream) -> Field {
        let g = max(cells, 1) + 1
        var grid = [Float](repeating: 0, count: g * g)
        for i in grid.indices { grid[i] = rng.uniform(-1, 1) }
        var f = Field(height: height, width: width)
        let sy = Float(g - 1) / Float(max(height - 1, 1)), sx = Float(g - 1) / Float(max(width - 1, 1))
        for y in 0..<height {
            let fy = Float(y) * sy
            let y0 = min(Int(fy), g - 2), ty = fy - Float(y0)
            for x in 0..<width {
                let fx = Float(x) * sx
                let x0 = min(Int(fx), g - 2), tx = fx - Float(x0)
                let a = grid[y0 * g + x0], b = grid[y0 * g + x0 + 1]
                let c = grid[(y0 + 1) * g + x0], d = grid[(y0 + 1) * g + x0 + 1]
                f.values[y * width + x] = (a * (1 - tx) + b * tx) * (1 - ty) + (c * (1 - tx) + d * tx) * ty
            }
        }
        return f
    }

    /// Separable Gaussian blur with standard deviation `sigma` pixels (edges clamped).
    mutating func blur(sigma: Float) {
        guard sigma > 0.05 else { return }
        let radius = max(1, Int((3 * sigma).rounded(.up)))
        var kernel = (-radius...radius).map { Float.exp(-Float($0 * $0) / (2 * sigma * sigma)) }
        let total = kernel.reduce(0, +)
        kernel = kernel.map { $0 / total }
        var tmp = values
        for y in 0..<height {
            for x in 0..<width {
                var s: Float = 0
                for k in -radius...radius {
                    s += kernel[k + radius] * values[y * width + min(max(x + k, 0), width - 1)]
                }
                tmp[y * width + x] = s
            }
        }
        for y in 0..<height {
            for x in 0..<width {
                var s: Float = 0
                for k in -radius...radius {
                    s += kernel[k + radius] * tmp[min(max(y + k, 0), height - 1) * width + x]
                }
                values[y * width + x] = s
            }
        }
    }
}

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

    /// The largest distance from the centre the blob can reach (for bounding boxes).
    var reach: Float {
        radius * max(aspect, 1 / aspect) * (1 + harmonics.reduce(0) { $0 + abs($1.amplitude) })
    }

    /// Calls `body(index, level)` for every pixel whose level is below `limit`.
    func forEachPixel(height: Int, width: Int, limit: Float = 1, _ body: (Int, Float) -> Void) {
        let r = reach * limit
        let y0 = max(0, Int(((cy - r) * Float(height)).rounded(.down))), y1 = min(height - 1, Int(((cy + r) * Float(height)).rounded(.up)))
        let x0 = max(0, Int(((cx - r) * Float(width)).rounded(.down))), x1 = min(width - 1, Int(((cx + r) * Float(width)).rounded(.up)))
        guard y0 <= y1, x0 <= x1 else { return }
        let c = Float.cos(rotation), s = Float.sin(rotation)
        for y in y0...y1 {
            let v = (Float(y) + 0.5) / Float(height)
            for x in x0...x1 {
                let l = level((Float(x) + 0.5) / Float(width), v, c: c, s: s)
                if l < limit { body(y * width + x, l) }
            }
        }
    }
}

/// A tube along a quadratic Bezier curve with a varying width (normalised units).
struct Tube {
    var p0: (Float, Float)
    var p1: (Float, Float)
    var p2: (Float, Float)
    var width0: Float
    var width1: Float

    /// Calls `body(index)` for pixels within the tube.
    func forEachPixel(height: Int, width: Int, _ body: (Int) -> Void) {
        let samples = 4 * max(height, width)
        var points: [(Float, Float, Float)] = []
        for i in 0...samples {
            let t = Float(i) / Float(samples), a = (1 - t) * (1 - t), b = 2 * (1 - t) * t, c = t * t
            points.append((a * p0.0 + b * p1.0 + c * p2.0, a * p0.1 + b * p1.1 + c * p2.1,
                           width0 + (width1 - width0) * t))
        }
        var inside = [Bool](repeating: false, count: height * width)
        for (u, v, w) in points {
            let half = w / 2
            let y0 = max(0, Int((v - half) * Float(height))), y1 = min(height - 1, Int((v + half) * Float(height)) + 1)
            let x0 = max(0, Int((u - half) * Float(width))), x1 = min(width - 1, Int((u + half) * Float(width)) + 1)
            guard y0 <= y1, x0 <= x1 else { continue }
            for y in y0...y1 {
                let dv = (Float(y) + 0.5) / Float(height) - v
                for x in x0...x1 {
                    let du = (Float(x) + 0.5) / Float(width) - u
                    if du * du + dv * dv <= half * half { inside[y * width + x] = true }
                }
            }
        }
        for i in inside.indices where inside[i] { body(i) }
    }
}
