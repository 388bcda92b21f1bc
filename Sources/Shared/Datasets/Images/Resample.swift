import RealModule

/// 2D resampling for preprocessing: bilinear for images (antialiased when shrinking: the
/// triangle filter widens with the scale, like PyTorch's `antialias=True`) and nearest
/// neighbour for masks.
public enum Resample {
    /// Resizes a row-major `height` x `width` image to `outHeight` x `outWidth`.
    public static func bilinear(_ src: [Float], height: Int, width: Int, outHeight: Int, outWidth: Int) -> [Float] {
        if height == outHeight && width == outWidth { return src }
        let rows = weights(from: height, to: outHeight), cols = weights(from: width, to: outWidth)
        var tmp = [Float](repeating: 0, count: height * outWidth)
        for y in 0..<height {
            for (x, taps) in cols.enumerated() {
                var s: Float = 0
                for (i, w) in taps { s += w * src[y * width + i] }
                tmp[y * outWidth + x] = s
            }
        }
        var out = [Float](repeating: 0, count: outHeight * outWidth)
        for (y, taps) in rows.enumerated() {
            for x in 0..<outWidth {
                var s: Float = 0
                for (i, w) in taps { s += w * tmp[i * outWidth + x] }
                out[y * outWidth + x] = s
            }
        }
        return out
    }

    /// Nearest-neighbour resize (for label maps).
    public static func nearest<T>(_ src: [T], height: Int, width: Int, outHeight: Int, outWidth: Int) -> [T] {
        if height == outHeight && width == outWidth { return src }
        var out: [T] = []
        out.reserveCapacity(outHeight * outWidth)
        for y in 0..<outHeight {
            let sy = min(height - 1, Int((Double(y) + 0.5) * Double(height) / Double(outHeight)))
            for x in 0..<outWidth {
                let sx = min(width - 1, Int((Double(x) + 0.5) * Double(width) / Double(outWidth)))
                out.append(src[sy * width + sx])
            }
        }
        return out
    }

    /// Per output index: (input index, weight) taps of the triangle filter, normalised.
    static func weights(from n: Int, to m: Int) -> [[(Int, Float)]] {
        let scale = Double(n) / Double(m)
        let support = max(scale, 1)
        return (0..<m).map { o in
            let centre = (Double(o) + 0.5) * scale - 0.5
            let lo = Int((centre - support).rounded(.up)), hi = Int((centre + support).rounded(.down))
            var taps: [(Int, Float)] = []
            var total = 0.0
            for i in max(lo, 0)...max(min(hi, n - 1), max(lo, 0)) {
                let w = max(0, 1 - abs(Double(i) - centre) / support)
                if w > 0 { taps.append((i, Float(w))); total += w }
            }
            if taps.isEmpty { taps = [(min(max(Int(centre.rounded()), 0), n - 1), 1)]; total = 1 }
            return taps.map { ($0.0, Float(Double($0.1) / total)) }
        }
    }

    /// A similarity transform about the image centre, as used by augmentation and by the
    /// pretraining views: an optional left-right mirror, then rotation by `angle` radians,
    /// scaling by `scale` and a shift of (`shiftY`, `shiftX`) pixels.
    public struct Warp: Sendable, Equatable {
        public var angle: Float
        public var scale: Float = 1
        public var shiftX: Float = 0
        public var shiftY: Float = 0
        public var flip = false

        public init(angle: Float, scale: Float = 1, shiftX: Float = 0, shiftY: Float = 0, flip: Bool = false) {
            self.angle = angle
            self.scale = scale
            self.shiftX = shiftX
            self.shiftY = shiftY
            self.flip = flip
        }
    }

    /// Applies `warp` to a row-major `height` x `width` image by inverse mapping: output pixel
    /// (y, x) reads the input at (sy, sx), with xo = (flip ? W-1-x : x) - cx - shiftX,
    /// yo = y - cy - shiftY, sx = (cos a xo + sin a yo) / scale + cx and
    /// sy = (-sin a xo + cos a yo) / scale + cy. Bilinear for images, nearest for masks
    /// (`nearest: true`); what falls outside the input is `fill`.
    public static func warp(_ src: [Float], height: Int, width: Int, _ warp: Warp, nearest: Bool, fill: Float) -> [Float] {
        let c = Float.cos(warp.angle) / warp.scale, s = Float.sin(warp.angle) / warp.scale
        let cy = Float(height - 1) / 2, cx = Float(width - 1) / 2
        var out = [Float](repeating: fill, count: height * width)
        for y in 0..<height {
            for x in 0..<width {
                let xo = (warp.flip ? Float(width - 1 - x) : Float(x)) - cx - warp.shiftX, yo = Float(y) - cy - warp.shiftY
                let sx = c * xo + s * yo + cx, sy = -s * xo + c * yo + cy
                if nearest {
                    let ix = Int(sx.rounded()), iy = Int(sy.rounded())
                    if ix >= 0, iy >= 0, ix < width, iy < height { out[y * width + x] = src[iy * width + ix] }
                } else {
                    let x0 = Int(sx.rounded(.down)), y0 = Int(sy.rounded(.down))
                    guard x0 >= 0, y0 >= 0, x0 + 1 < width, y0 + 1 < height else { continue }
                    let tx = sx - Float(x0), ty = sy - Float(y0)
                    let a = src[y0 * width + x0], b = src[y0 * width + x0 + 1]
                    let d = src[(y0 + 1) * width + x0], e = src[(y0 + 1) * width + x0 + 1]
                    out[y * width + x] = (a * (1 - tx) + b * tx) * (1 - ty) + (d * (1 - tx) + e * tx) * ty
                }
            }
        }
        return out
    }
}
