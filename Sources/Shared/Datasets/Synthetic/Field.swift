import Core
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

    /// Separable Gaussian blur with standard deviation `sigma` pixels (edges clamped). Each
    /// output sums its taps in kernel order starting from zero, row pass then column pass;
    /// rows are padded with their edge values and the column pass runs a row at a time, so
    /// the loops vectorise without changing a bit.
    mutating func blur(sigma: Float) {
        guard sigma > 0.05 else { return }
        let radius = max(1, Int((3 * sigma).rounded(.up)))
        var kernel = (-radius...radius).map { Float.exp(-Float($0 * $0) / (2 * sigma * sigma)) }
        let total = kernel.reduce(0, +)
        kernel = kernel.map { $0 / total }
        let (h, w, taps) = (height, width, 2 * radius + 1)
        var tmp = [Float](repeating: 0, count: h * w)
        var padded = [Float](repeating: 0, count: w + 2 * radius)
        values.withUnsafeMutableBufferPointer { v in
            tmp.withUnsafeMutableBufferPointer { t in
                kernel.withUnsafeBufferPointer { k in
                    padded.withUnsafeMutableBufferPointer { p in
                        for y in 0..<h {
                            let row = y * w
                            for i in 0..<(w + 2 * radius) { p[i] = v[row + min(max(i - radius, 0), w - 1)] }
                            for x in 0..<w {
                                var s: Float = 0
                                for j in 0..<taps { s += k[j] * p[x + j] }
                                t[row + x] = s
                            }
                        }
                    }
                    for y in 0..<h {
                        let out = y * w
                        for x in 0..<w { v[out + x] = 0 }
                        for j in 0..<taps {
                            let source = min(max(y + j - radius, 0), h - 1) * w, weight = k[j]
                            for x in 0..<w { v[out + x] += weight * t[source + x] }
                        }
                    }
                }
            }
        }
    }
}
