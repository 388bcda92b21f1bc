/// C linear heads on the features a network's body computes (the node its output head
/// reads, [n, F, P]), one per structure class, for multi-class supervised training:
///
///   z_c[b, p] = w_c . F[b, :, p] + b_c,   L = (1/C) sum_c L_seg(z_c, [label == c])
///
/// with L_seg the W1 segmentation loss (`SegmentationLoss`), so each class is a sigmoid output
/// of its own (multi-label) and the loss has the scale of one binary task. `lossAndGradient`
/// gives L, dL/dh for the heads h = [w_1, b_1, ..., w_C, b_C] (C (F + 1) numbers), and dL/dF,
/// from which one backward pass of the body gives its gradient
/// (`Network.backward(featureCotangent:)`). Not thread-safe: one per thread.
public final class MultiClassHeads<Scalar: EngineScalar> {
    public let channels: Int
    public let pixels: Int
    public let classes: Int
    public let capacity: Int
    private let loss: SegmentationLoss<Scalar>
    private let logits, dz, masks: Storage<Scalar>

    /// Heads on `channels` feature channels of `pixels` pixels, for `classes` classes (label
    /// values 1...classes) and up to `capacity` images.
    public init(channels: Int, pixels: Int, classes: Int, capacity: Int) {
        precondition(channels > 0 && pixels > 0 && classes > 0 && capacity > 0, "empty heads")
        self.channels = channels
        self.pixels = pixels
        self.classes = classes
        self.capacity = capacity
        loss = SegmentationLoss(pixels: pixels, capacity: capacity)
        logits = Storage(count: capacity * pixels)
        dz = Storage(count: capacity * pixels)
        masks = Storage(count: capacity * pixels)
    }

    /// Parameters of the heads: C (F + 1).
    public var parameterCount: Int { classes * (channels + 1) }

    /// The loss; writes dL/dF into `featureCotangent` [batch, F, P] and adds dL/dh to
    /// `headGradient` [C (F + 1)].
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public func lossAndGradient(features: UnsafePointer<Scalar>, labels: UnsafePointer<UInt8>, batch: Int,
                                heads: UnsafePointer<Scalar>, featureCotangent: UnsafeMutablePointer<Scalar>,
                                headGradient: UnsafeMutablePointer<Scalar>) -> Scalar {
        precondition(batch > 0 && batch <= capacity, "batch \(batch) exceeds capacity \(capacity)")
        let c = channels, p = pixels, n = batch * pixels
        featureCotangent.update(repeating: 0, count: batch * c * p)
        let scale = 1 / Scalar(classes)
        var total: Scalar = 0
        for k in 0..<classes {
            let h = heads + k * (c + 1), g = headGradient + k * (c + 1)
            let z = logits.pointer, m = masks.pointer, d = dz.pointer
            let value = UInt8(k + 1)
            for j in 0..<n { m[j] = labels[j] == value ? 1 : 0 }
            for b in 0..<batch {
                let zb = z + b * p
                zb.update(repeating: h[c], count: p)
                for ch in 0..<c {
                    let w = h[ch], fb = features + (b * c + ch) * p
                    for j in 0..<p { zb[j] += w * fb[j] }
                }
            }
            total += loss.forward(logits: z, masks: m, batch: batch).total
            loss.backward(masks: m, batch: batch, into: d)
            // dL/dh_k = (1/C) [sum dz F; sum dz];  dL/dF += (1/C) dz w_k.
            var biasGradient: Scalar = 0
            for j in 0..<n { biasGradient += d[j] }
            g[c] += scale * biasGradient
            for ch in 0..<c {
                var s: Scalar = 0
                let w = scale * h[ch]
                for b in 0..<batch {
                    let fb = features + (b * c + ch) * p, db = d + b * p, cb = featureCotangent + (b * c + ch) * p
                    for j in 0..<p {
                        s += db[j] * fb[j]
                        cb[j] += w * db[j]
                    }
                }
                g[ch] += scale * s
            }
        }
        return total * scale
    }
}
