/// Segmentation metrics on hard predictions (logit > 0, i.e. probability > 0.5).
public enum SegmentationMetrics {
    /// Mean over images of the Dice coefficient 2|P ∩ G| / (|P| + |G|); an image where both
    /// prediction and ground truth are empty scores 1.
    public static func meanDice<S: EngineScalar>(logits: UnsafePointer<S>, masks: UnsafePointer<S>, images: Int, pixels: Int) -> Float {
        var total: Double = 0
        for b in 0..<images {
            var inter = 0, pred = 0, truth = 0
            for j in (b * pixels)..<((b + 1) * pixels) {
                let p = logits[j] > 0, g = masks[j] > 0.5
                if p { pred += 1 }
                if g { truth += 1 }
                if p && g { inter += 1 }
            }
            total += pred + truth == 0 ? 1 : 2 * Double(inter) / Double(pred + truth)
        }
        return Float(total / Double(max(images, 1)))
    }
}
