/// The overlap of a binary prediction with a binary ground truth on one image, and the
/// scores made from it: the one place MedMAML defines Dice, IoU, precision and recall.
///
/// A prediction is foreground where its logit is positive (probability above 0.5), a mask
/// where its value is above 0.5.
public struct Overlap: Sendable, Equatable {
    public var truePositives = 0
    public var falsePositives = 0
    public var falseNegatives = 0

    public init() {}

    /// Counts `count` pixels of logits against a mask.
    @_specialize(exported: true, where S == Float)
    @_specialize(exported: true, where S == Double)
    public init<S: BinaryFloatingPoint>(logits: UnsafePointer<S>, truth: UnsafePointer<S>, count: Int) {
        for j in 0..<count { add(predicted: logits[j] > 0, actual: truth[j] > 0.5) }
    }

    /// Counts a binary prediction (values above 0.5 are foreground) against a mask.
    public init(prediction: [Float], truth: [Float]) {
        precondition(prediction.count == truth.count, "size mismatch")
        for (p, t) in zip(prediction, truth) { add(predicted: p > 0.5, actual: t > 0.5) }
    }

    @inline(__always)
    mutating func add(predicted: Bool, actual: Bool) {
        if predicted && actual { truePositives += 1 } else if predicted { falsePositives += 1 } else if actual { falseNegatives += 1 }
    }

    private var tp: Double { Double(truePositives) }
    private var fp: Double { Double(falsePositives) }
    private var fn: Double { Double(falseNegatives) }
    /// Neither prediction nor truth has any foreground.
    public var isEmpty: Bool { truePositives + falsePositives + falseNegatives == 0 }

    /// 2|P ∩ G| / (|P| + |G|); 1 when both are empty.
    public var dice: Double { isEmpty ? 1 : 2 * tp / (2 * tp + fp + fn) }
    /// |P ∩ G| / |P ∪ G|; 1 when both are empty.
    public var iou: Double { isEmpty ? 1 : tp / (tp + fp + fn) }
    /// |P ∩ G| / |P|; with no prediction, 1 if there was nothing to find, else 0.
    public var precision: Double { truePositives + falsePositives == 0 ? (falseNegatives == 0 ? 1 : 0) : tp / (tp + fp) }
    /// |P ∩ G| / |G|; with no foreground, 1 if nothing was predicted, else 0.
    public var recall: Double { truePositives + falseNegatives == 0 ? (falsePositives == 0 ? 1 : 0) : tp / (tp + fn) }

    /// Mean Dice over `images` images of `pixels` pixels each (logits and masks, image after image).
    @_specialize(exported: true, where S == Float)
    @_specialize(exported: true, where S == Double)
    public static func meanDice<S: BinaryFloatingPoint>(logits: UnsafePointer<S>, masks: UnsafePointer<S>, images: Int, pixels: Int) -> Float {
        var total: Double = 0
        for b in 0..<images { total += Overlap(logits: logits + b * pixels, truth: masks + b * pixels, count: pixels).dice }
        return Float(total / Double(max(images, 1)))
    }
}
