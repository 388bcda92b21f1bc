import RealModule

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
