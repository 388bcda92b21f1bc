/// An RGB canvas for result pictures: images, masks, outlines and panels side by side.
public struct Canvas {
    public let width: Int
    public let height: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, background: (UInt8, UInt8, UInt8) = (255, 255, 255)) {
        self.width = width
        self.height = height
        pixels = [UInt8](repeating: 0, count: width * height * 3)
        for i in 0..<(width * height) {
            pixels[3 * i] = background.0; pixels[3 * i + 1] = background.1; pixels[3 * i + 2] = background.2
        }
    }

    public mutating func set(_ x: Int, _ y: Int, _ c: (UInt8, UInt8, UInt8)) {
        guard x >= 0, y >= 0, x < width, y < height else { return }
        let i = 3 * (y * width + x)
        pixels[i] = c.0; pixels[i + 1] = c.1; pixels[i + 2] = c.2
    }

    /// Draws a grayscale image (values windowed to its 1st-99th percentile) at (x0, y0),
    /// each pixel `zoom` x `zoom`.
    public mutating func drawImage(_ values: [Float], width w: Int, height h: Int, at x0: Int, _ y0: Int, zoom: Int) {
        let sorted = values.sorted()
        let lo = sorted[sorted.count / 100], hi = sorted[min(sorted.count - 1, sorted.count * 99 / 100)]
        let span = max(hi - lo, 1e-6)
        for y in 0..<h {
            for x in 0..<w {
                let g = UInt8(max(0, min(255, ((values[y * w + x] - lo) / span * 255).rounded())))
                for dy in 0..<zoom { for dx in 0..<zoom { set(x0 + x * zoom + dx, y0 + y * zoom + dy, (g, g, g)) } }
            }
        }
    }

    /// Draws the outline of a binary mask (pixels inside with a neighbour outside).
    public mutating func drawOutline(_ mask: [Float], width w: Int, height h: Int, at x0: Int, _ y0: Int, zoom: Int,
                                     color: (UInt8, UInt8, UInt8)) {
        func inside(_ x: Int, _ y: Int) -> Bool { x >= 0 && y >= 0 && x < w && y < h && mask[y * w + x] > 0.5 }
        for y in 0..<h {
            for x in 0..<w where inside(x, y) {
                guard !(inside(x - 1, y) && inside(x + 1, y) && inside(x, y - 1) && inside(x, y + 1)) else { continue }
                // Draw the boundary pixel's outer edges at full zoom resolution.
                for dy in 0..<zoom {
                    for dx in 0..<zoom {
                        let edge = (!inside(x - 1, y) && dx == 0) || (!inside(x + 1, y) && dx == zoom - 1)
                            || (!inside(x, y - 1) && dy == 0) || (!inside(x, y + 1) && dy == zoom - 1)
                        if edge || zoom == 1 { set(x0 + x * zoom + dx, y0 + y * zoom + dy, color) }
                    }
                }
            }
        }
    }

    /// Fills a mask with a translucent colour over what is drawn.
    public mutating func tint(_ mask: [Float], width w: Int, height h: Int, at x0: Int, _ y0: Int, zoom: Int,
                              color: (UInt8, UInt8, UInt8), alpha: Float) {
        for y in 0..<h {
            for x in 0..<w where mask[y * w + x] > 0.5 {
                for dy in 0..<zoom {
                    for dx in 0..<zoom {
                        let px = x0 + x * zoom + dx, py = y0 + y * zoom + dy
                        guard px < width, py < height else { continue }
                        let i = 3 * (py * width + px)
                        for (k, c) in [color.0, color.1, color.2].enumerated() {
                            pixels[i + k] = UInt8(Float(pixels[i + k]) * (1 - alpha) + Float(c) * alpha)
                        }
                    }
                }
            }
        }
    }

    public func write(to path: String) throws(DataError) {
        try PNG.write(path: path, width: width, height: height, channels: 3, pixels: pixels)
    }
}


extension Canvas {
    /// A straight line (Bresenham).
    public mutating func line(_ x0: Int, _ y0: Int, _ x1: Int, _ y1: Int, color: (UInt8, UInt8, UInt8), thickness: Int = 1) {
        var x = x0, y = y0
        let dx = abs(x1 - x0), dy = -abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1
        var err = dx + dy
        while true {
            for t in 0..<thickness { set(x, y + t, color); set(x + t, y, color) }
            if x == x1 && y == y1 { break }
            let e2 = 2 * err
            if e2 >= dy { err += dy; x += sx }
            if e2 <= dx { err += dx; y += sy }
        }
    }

    public mutating func rect(_ x: Int, _ y: Int, _ w: Int, _ h: Int, color: (UInt8, UInt8, UInt8)) {
        line(x, y, x + w, y, color: color)
        line(x, y + h, x + w, y + h, color: color)
        line(x, y, x, y + h, color: color)
        line(x + w, y, x + w, y + h, color: color)
    }
}
