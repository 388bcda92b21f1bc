import Engine

/// Per-image segmentation scores of a binary prediction against a binary ground truth.
public struct SegmentationScores: Sendable, Codable, Equatable {
    public var dice: Double
    public var iou: Double
    public var precision: Double
    public var recall: Double
    /// 95th percentile of the symmetric boundary distances (pixels, or mm with spacing); nil
    /// when prediction or ground truth is empty.
    public var hd95: Double?

    /// Scores one image (row-major `height` x `width`, values > 0.5 are foreground).
    /// `spacing` is (row, column) pixel size for distances in physical units.
    public init(prediction: [Float], truth: [Float], height: Int, width: Int, spacing: (Double, Double) = (1, 1)) {
        precondition(prediction.count == height * width && truth.count == height * width, "size mismatch")
        let overlap = Overlap(prediction: prediction, truth: truth)
        dice = overlap.dice
        iou = overlap.iou
        precision = overlap.precision
        recall = overlap.recall
        hd95 = Self.hausdorff95(prediction, truth, height: height, width: width, spacing: spacing)
    }

    /// Boundary pixels: foreground with a 4-neighbour outside (or at the image edge).
    static func boundary(_ m: [Float], height: Int, width: Int) -> [(Int, Int)] {
        var out: [(Int, Int)] = []
        func fg(_ y: Int, _ x: Int) -> Bool { y >= 0 && x >= 0 && y < height && x < width && m[y * width + x] > 0.5 }
        for y in 0..<height {
            for x in 0..<width where fg(y, x) {
                if !fg(y - 1, x) || !fg(y + 1, x) || !fg(y, x - 1) || !fg(y, x + 1) { out.append((y, x)) }
            }
        }
        return out
    }

    /// HD95: the 95th percentile of the distances from each boundary point of one mask to the
    /// nearest boundary point of the other, both directions pooled (as MONAI and medpy do).
    static func hausdorff95(_ a: [Float], _ b: [Float], height: Int, width: Int, spacing: (Double, Double)) -> Double? {
        let ba = boundary(a, height: height, width: width), bb = boundary(b, height: height, width: width)
        guard !ba.isEmpty, !bb.isEmpty else { return nil }
        func nearest(_ from: [(Int, Int)], _ to: [(Int, Int)]) -> [Double] {
            from.map { p in
                var best = Double.infinity
                for q in to {
                    let dy = Double(p.0 - q.0) * spacing.0, dx = Double(p.1 - q.1) * spacing.1
                    best = min(best, dy * dy + dx * dx)
                }
                return best.squareRoot()
            }
        }
        let d = (nearest(ba, bb) + nearest(bb, ba)).sorted()
        return d[min(d.count - 1, Int((0.95 * Double(d.count - 1)).rounded(.up)))]
    }
}
