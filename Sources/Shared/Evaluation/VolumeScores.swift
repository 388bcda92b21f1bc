/// 3D scores of a binary prediction against a binary ground truth on a volume's own grid:
/// Dice, and HD95 in mm from exact Euclidean distance transforms with the voxel spacing
/// (Felzenszwalb and Huttenlocher, 2012), so large volumes are scored in linear time.
public struct VolumeScores: Sendable, Codable, Equatable {
    public var dice: Double
    /// The 95th percentile of the surface distances, both directions pooled (mm); nil when
    /// either mask is empty.
    public var hd95: Double?
    public var predictedVoxels: Int
    public var truthVoxels: Int

    /// `prediction` and `truth` are x-fastest volumes of `dims` with voxel size `spacing`.
    public init(prediction: [Bool], truth: [Bool], dims: (Int, Int, Int), spacing: (Double, Double, Double)) {
        precondition(prediction.count == dims.0 * dims.1 * dims.2 && truth.count == prediction.count, "size mismatch")
        var both = 0, p = 0, t = 0
        for i in prediction.indices {
            if prediction[i] { p += 1 }
            if truth[i] { t += 1 }
            if prediction[i] && truth[i] { both += 1 }
        }
        predictedVoxels = p
        truthVoxels = t
        dice = p + t == 0 ? 1 : 2 * Double(both) / Double(p + t)
        guard p > 0, t > 0 else { hd95 = nil; return }
        let surfaceP = Self.surface(prediction, dims: dims), surfaceT = Self.surface(truth, dims: dims)
        let toT = Self.distanceTransform(surfaceT, dims: dims, spacing: spacing)
        let toP = Self.distanceTransform(surfaceP, dims: dims, spacing: spacing)
        var d: [Double] = []
        for i in surfaceP.indices where surfaceP[i] { d.append(toT[i].squareRoot()) }
        for i in surfaceT.indices where surfaceT[i] { d.append(toP[i].squareRoot()) }
        d.sort()
        hd95 = d[min(d.count - 1, Int((0.95 * Double(d.count - 1)).rounded(.up)))]
    }

    /// Foreground voxels with a 6-neighbour outside the mask (or at the volume's edge).
    public static func surface(_ m: [Bool], dims: (Int, Int, Int)) -> [Bool] {
        let (nx, ny, nz) = dims
        var out = [Bool](repeating: false, count: m.count)
        for z in 0..<nz {
            for y in 0..<ny {
                for x in 0..<nx {
                    let i = (z * ny + y) * nx + x
                    guard m[i] else { continue }
                    out[i] = x == 0 || x == nx - 1 || y == 0 || y == ny - 1 || z == 0 || z == nz - 1
                        || !m[i - 1] || !m[i + 1] || !m[i - nx] || !m[i + nx] || !m[i - nx * ny] || !m[i + nx * ny]
                }
            }
        }
        return out
    }

    /// Squared distance (mm^2) from every voxel to the nearest set voxel of `m`: the 1D
    /// lower-envelope transform along x, then y, then z.
    static func distanceTransform(_ m: [Bool], dims: (Int, Int, Int), spacing: (Double, Double, Double)) -> [Double] {
        let (nx, ny, nz) = dims
        var d = m.map { $0 ? 0.0 : .infinity }
        let maximum = max(nx, ny, nz)
        var f = [Double](repeating: 0, count: maximum), out = f
        func pass(count n: Int, step: Double, index: (Int) -> Int) {
            for k in 0..<n { f[k] = d[index(k)] }
            transform1D(f, n: n, step: step, into: &out)
            for k in 0..<n { d[index(k)] = out[k] }
        }
        for z in 0..<nz { for y in 0..<ny { pass(count: nx, step: spacing.0) { (z * ny + y) * nx + $0 } } }
        for z in 0..<nz { for x in 0..<nx { pass(count: ny, step: spacing.1) { (z * ny + $0) * nx + x } } }
        for y in 0..<ny { for x in 0..<nx { pass(count: nz, step: spacing.2) { ($0 * ny + y) * nx + x } } }
        return d
    }

    /// out[q] = min_p f[p] + (step (q - p))^2, by the lower envelope of parabolas.
    static func transform1D(_ f: [Double], n: Int, step: Double, into out: inout [Double]) {
        var v = [Int](repeating: 0, count: n), z = [Double](repeating: 0, count: n + 1)
        var k = -1
        let s2 = step * step
        for q in 0..<n where f[q].isFinite {
            if k < 0 {
                k = 0
                v[0] = q
                z[0] = -.infinity
                z[1] = .infinity
                continue
            }
            var s: Double
            repeat {
                let p = v[k]
                s = ((f[q] + s2 * Double(q * q)) - (f[p] + s2 * Double(p * p))) / (2 * s2 * Double(q - p))
                if s <= z[k] { k -= 1 } else { break }
            } while k >= 0
            k += 1
            v[k] = q
            z[k] = k == 0 ? -.infinity : s
            z[k + 1] = .infinity
        }
        guard k >= 0 else {
            for q in 0..<n { out[q] = .infinity }
            return
        }
        var j = 0
        for q in 0..<n {
            while z[j + 1] < Double(q) { j += 1 }
            let p = v[j]
            out[q] = s2 * Double((q - p) * (q - p)) + f[p]
        }
    }
}
