/// Binary morphology on square row-major masks, for the task universe's rules: dilation and
/// erosion with a disk, 4-connected components, and hole filling. What lies outside the image
/// counts as background.
public enum Morphology {
    /// Pixel offsets within `radius` pixels (Euclidean), the centre included.
    static func disk(_ radius: Float) -> [(Int, Int)] {
        let r = Int(radius.rounded(.down))
        guard r > 0 else { return [(0, 0)] }
        var out: [(Int, Int)] = []
        for dy in -r...r {
            for dx in -r...r where Float(dx * dx + dy * dy) <= radius * radius { out.append((dy, dx)) }
        }
        return out
    }

    /// `mask` grown by a disk of `radius` pixels.
    public static func dilate(_ mask: [Bool], size: Int, radius: Float) -> [Bool] {
        guard radius >= 1 else { return mask }
        let offsets = disk(radius)
        var out = [Bool](repeating: false, count: mask.count)
        for y in 0..<size {
            for x in 0..<size where mask[y * size + x] {
                for (dy, dx) in offsets {
                    let yy = y + dy, xx = x + dx
                    if yy >= 0, yy < size, xx >= 0, xx < size { out[yy * size + xx] = true }
                }
            }
        }
        return out
    }

    /// `mask` shrunk by a disk of `radius` pixels (the outside is background).
    public static func erode(_ mask: [Bool], size: Int, radius: Float) -> [Bool] {
        guard radius >= 1 else { return mask }
        let offsets = disk(radius)
        var out = mask
        for y in 0..<size {
            for x in 0..<size where mask[y * size + x] {
                for (dy, dx) in offsets {
                    let yy = y + dy, xx = x + dx
                    if yy < 0 || yy >= size || xx < 0 || xx >= size || !mask[yy * size + xx] {
                        out[y * size + x] = false
                        break
                    }
                }
            }
        }
        return out
    }

    public static func subtract(_ a: [Bool], _ b: [Bool]) -> [Bool] { zip(a, b).map { $0 && !$1 } }
    public static func union(_ a: [Bool], _ b: [Bool]) -> [Bool] { zip(a, b).map { $0 || $1 } }

    /// 4-connected components of `mask`: a component number per pixel (-1 outside the mask),
    /// numbered in scan order, and each component's pixel count.
    public static func components(_ mask: [Bool], size: Int) -> (labels: [Int], sizes: [Int]) {
        var labels = [Int](repeating: -1, count: mask.count)
        var sizes: [Int] = []
        var stack: [Int] = []
        for start in mask.indices where mask[start] && labels[start] < 0 {
            let id = sizes.count
            var count = 0
            labels[start] = id
            stack.append(start)
            while let i = stack.popLast() {
                count += 1
                let y = i / size, x = i % size
                for (yy, xx) in [(y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)] where yy >= 0 && yy < size && xx >= 0 && xx < size {
                    let j = yy * size + xx
                    if mask[j] && labels[j] < 0 {
                        labels[j] = id
                        stack.append(j)
                    }
                }
            }
            sizes.append(count)
        }
        return (labels, sizes)
    }

    /// `mask` with its holes filled: background regions that do not reach the image's edge.
    public static func fillHoles(_ mask: [Bool], size: Int) -> [Bool] {
        let background = mask.map { !$0 }
        let (labels, sizes) = components(background, size: size)
        var touchesEdge = [Bool](repeating: false, count: sizes.count)
        for i in 0..<size {
            for j in [i, (size - 1) * size + i, i * size, i * size + size - 1] where labels[j] >= 0 { touchesEdge[labels[j]] = true }
        }
        return mask.indices.map { mask[$0] || (labels[$0] >= 0 && !touchesEdge[labels[$0]]) }
    }

    /// The components of `mask` for which `keep(component pixels)` says yes.
    public static func selectComponents(_ mask: [Bool], size: Int, keep: ([Int]) -> Bool) -> [Bool] {
        let (labels, sizes) = components(mask, size: size)
        var members = [[Int]](repeating: [], count: sizes.count)
        for (i, l) in labels.enumerated() where l >= 0 { members[l].append(i) }
        let kept = members.map(keep)
        return labels.map { $0 >= 0 && kept[$0] }
    }

    /// The 4-neighbours of a component (pixels outside it), as indices; edge pixels of the
    /// image count the outside once as -1.
    static func border(of pixels: [Int], size: Int, inside: Set<Int>) -> [Int] {
        var out: [Int] = []
        for i in pixels {
            let y = i / size, x = i % size
            for (yy, xx) in [(y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)] {
                if yy < 0 || yy >= size || xx < 0 || xx >= size { out.append(-1); continue }
                let j = yy * size + xx
                if !inside.contains(j) { out.append(j) }
            }
        }
        return out
    }
}
