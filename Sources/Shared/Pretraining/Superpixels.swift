import Core
import RealModule

/// SLIC superpixels (Achanta et al., "SLIC Superpixels Compared to State-of-the-Art
/// Superpixel Methods", TPAMI 2012) for one grayscale image.
///
/// Centres start on a regular grid (moved to the lowest gradient in their 3x3
/// neighbourhood), then each pixel joins the nearest centre within 2S x 2S by
/// D^2 = (intensity difference)^2 + (spatial distance / S)^2 m^2, and centres move to their
/// members' mean, for `iterations` rounds. A final pass makes every superpixel one
/// 4-connected region and merges fragments smaller than a quarter of the expected size into a
/// neighbour. Every pixel gets a label in 0..<count; the result is deterministic.
public struct Superpixels: Sendable, Equatable {
    public let height: Int
    public let width: Int
    /// Label per pixel, row-major, in 0..<count.
    public let labels: [Int32]
    public let count: Int

    /// - Parameters: `target`: approximate number of superpixels; `compactness`: m, the weight
    ///   of spatial distance relative to intensity (intensities in the image's own units,
    ///   z-scored images use about 0.5).
    public init(image: [Float], height: Int, width: Int, target: Int = 60, compactness: Float = 0.5, iterations: Int = 8) {
        precondition(image.count == height * width && height > 2 && width > 2, "image size mismatch")
        self.height = height
        self.width = width
        let n = height * width
        let step = max(2, Int((Float(n) / Float(max(target, 1))).squareRoot().rounded()))
        let s = Float(step)
        // Grid centres, moved to the lowest gradient nearby.
        var cy: [Float] = [], cx: [Float] = [], cv: [Float] = []
        func at(_ y: Int, _ x: Int) -> Float { image[min(max(y, 0), height - 1) * width + min(max(x, 0), width - 1)] }
        func gradient(_ y: Int, _ x: Int) -> Float {
            let gx = at(y, x + 1) - at(y, x - 1), gy = at(y + 1, x) - at(y - 1, x)
            return gx * gx + gy * gy
        }
        var y = step / 2
        while y < height {
            var x = step / 2
            while x < width {
                var best = (y, x), bestG = gradient(y, x)
                for dy in -1...1 {
                    for dx in -1...1 {
                        let yy = min(max(y + dy, 0), height - 1), xx = min(max(x + dx, 0), width - 1)
                        let g = gradient(yy, xx)
                        if g < bestG { bestG = g; best = (yy, xx) }
                    }
                }
                cy.append(Float(best.0)); cx.append(Float(best.1)); cv.append(at(best.0, best.1))
                x += step
            }
            y += step
        }
        var label = [Int32](repeating: -1, count: n)
        var distance = [Float](repeating: .infinity, count: n)
        let m2 = compactness * compactness / (s * s)
        for _ in 0..<iterations {
            for i in 0..<n { distance[i] = .infinity }
            for k in cy.indices {
                let y0 = max(0, Int(cy[k] - s)), y1 = min(height - 1, Int(cy[k] + s))
                let x0 = max(0, Int(cx[k] - s)), x1 = min(width - 1, Int(cx[k] + s))
                guard y0 <= y1, x0 <= x1 else { continue }
                for yy in y0...y1 {
                    for xx in x0...x1 {
                        let i = yy * width + xx
                        let dv = image[i] - cv[k], dy = Float(yy) - cy[k], dx = Float(xx) - cx[k]
                        let d = dv * dv + (dy * dy + dx * dx) * m2
                        if d < distance[i] { distance[i] = d; label[i] = Int32(k) }
                    }
                }
            }
            var sy = [Float](repeating: 0, count: cy.count), sx = sy, sv = sy, c = sy
            for i in 0..<n where label[i] >= 0 {
                let k = Int(label[i])
                sy[k] += Float(i / width); sx[k] += Float(i % width); sv[k] += image[i]; c[k] += 1
            }
            for k in cy.indices where c[k] > 0 { cy[k] = sy[k] / c[k]; cx[k] = sx[k] / c[k]; cv[k] = sv[k] / c[k] }
        }
        // Pixels no window reached join their nearest centre.
        for i in 0..<n where label[i] < 0 {
            let yy = Float(i / width), xx = Float(i % width)
            var best = 0, bestD = Float.infinity
            for k in cy.indices {
                let d = (yy - cy[k]) * (yy - cy[k]) + (xx - cx[k]) * (xx - cx[k])
                if d < bestD { bestD = d; best = k }
            }
            label[i] = Int32(best)
        }
        (labels, count) = Self.connected(label, height: height, width: width, minimum: max(1, step * step / 4))
    }

    /// Relabels 4-connected components in scan order; components below `minimum` pixels join
    /// the component of their first already-labelled neighbour.
    static func connected(_ label: [Int32], height: Int, width: Int, minimum: Int) -> ([Int32], Int) {
        let n = label.count
        var out = [Int32](repeating: -1, count: n)
        var next: Int32 = 0
        var stack: [Int] = [], members: [Int] = []
        for start in 0..<n where out[start] < 0 {
            // The label of an earlier adjacent component, for merging small fragments.
            var adjacent: Int32 = -1
            let sy = start / width, sx = start % width
            if sx > 0, out[start - 1] >= 0 { adjacent = out[start - 1] } else if sy > 0, out[start - width] >= 0 { adjacent = out[start - width] }
            members.removeAll(keepingCapacity: true)
            stack.append(start)
            out[start] = next
            while let i = stack.popLast() {
                members.append(i)
                let y = i / width, x = i % width
                for j in [y > 0 ? i - width : -1, y < height - 1 ? i + width : -1, x > 0 ? i - 1 : -1, x < width - 1 ? i + 1 : -1]
                where j >= 0 && out[j] < 0 && label[j] == label[start] {
                    out[j] = next
                    stack.append(j)
                }
            }
            if members.count < minimum && adjacent >= 0 {
                for i in members { out[i] = adjacent }
            } else {
                next += 1
            }
        }
        return (out, Int(next))
    }

    /// Pixel count per label.
    public var areas: [Int] {
        var a = [Int](repeating: 0, count: count)
        for l in labels { a[Int(l)] += 1 }
        return a
    }

    /// For each label, the labels sharing a 4-neighbour border with it (sorted).
    public var adjacency: [[Int]] {
        var sets = [Set<Int>](repeating: [], count: count)
        for y in 0..<height {
            for x in 0..<width {
                let a = Int(labels[y * width + x])
                if x + 1 < width { let b = Int(labels[y * width + x + 1]); if a != b { sets[a].insert(b); sets[b].insert(a) } }
                if y + 1 < height { let b = Int(labels[(y + 1) * width + x]); if a != b { sets[a].insert(b); sets[b].insert(a) } }
            }
        }
        return sets.map { $0.sorted() }
    }
}
