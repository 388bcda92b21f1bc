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
