/// The W1 segmentation loss on logits z and binary masks m, n images of P pixels:
///
///   L = BCEWithLogits(z, m) averaged over all n*P pixels
///     + 1 - (1/n) sum_b (2 sum(p m) + 1) / (sum(p) + sum(m) + 1),   p = sigmoid(z),
///
/// with the sums per image (soft Dice, smoothing 1). `backward` gives dL/dz; `tangent`
/// gives the directional derivative of dL/dz along z-dot, i.e. (d^2 L/dz^2) z-dot, which
/// the Hessian-vector product feeds back through the network.
///
/// Per image, with A = 2 sum(p m) + 1, B = sum(p) + sum(m) + 1, s = p (1 - p):
///   dL/dz_j = (p_j - m_j)/(nP) - (1/n) c_j s_j,   c_j = (2 m_j B - A) / B^2
///   tangent: s_j z-dot_j/(nP) - (1/n)(c-dot_j s_j + c_j s-dot_j), with p-dot = s z-dot,
///   A-dot = 2 sum(p-dot m), B-dot = sum(p-dot), s-dot = (1 - 2p) p-dot,
///   c-dot_j = (2 m_j B-dot - A-dot)/B^2 - 2 (2 m_j B - A) B-dot / B^3.
public final class SegmentationLoss<Scalar: EngineScalar> {
    public let pixels: Int
    private let probabilities: Storage<Scalar>
    /// Per image: A, B.
    private let sums: Storage<Scalar>
    private let capacity: Int

    public init(pixels: Int, capacity: Int) {
        self.pixels = pixels
        self.capacity = capacity
        probabilities = Storage(count: pixels * capacity)
        sums = Storage(count: 2 * capacity)
    }

    /// The loss terms of one evaluation.
    public struct Value: Sendable {
        /// BCE + soft-Dice loss.
        public var total: Scalar
        public var bce: Scalar
        /// Mean soft Dice coefficient (1 minus the Dice loss term).
        public var softDice: Scalar
    }

    @inline(__always)
    static func sigmoid(_ z: Scalar) -> Scalar {
        z >= 0 ? 1 / (1 + Scalar.exp(-z)) : { let e = Scalar.exp(z); return e / (1 + e) }()
    }

    /// Computes the loss and remembers what the derivatives need.
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public func forward(logits z: UnsafePointer<Scalar>, masks m: UnsafePointer<Scalar>, batch: Int)
        -> Value
    {
        precondition(batch <= capacity, "batch exceeds the loss capacity")
        let p = probabilities.pointer
        var bceSum: Scalar = 0
        var diceSum: Scalar = 0
        for b in 0..<batch {
            var pm: Scalar = 0, ps: Scalar = 0, ms: Scalar = 0, bce: Scalar = 0
            for j in (b * pixels)..<((b + 1) * pixels) {
                let zj = z[j], mj = m[j]
                let pj = Self.sigmoid(zj)
                p[j] = pj
                pm += pj * mj
                ps += pj
                ms += mj
                // max(z, 0) - z m + log(1 + exp(-|z|)), stable for any z.
                bce += max(zj, 0) - zj * mj + Scalar.log(onePlus: Scalar.exp(-abs(zj)))
            }
            let a = 2 * pm + 1, bb = ps + ms + 1
            sums.pointer[2 * b] = a
            sums.pointer[2 * b + 1] = bb
            diceSum += a / bb
            bceSum += bce
        }
        let bceMean = bceSum / Scalar(batch * pixels)
        let dice = diceSum / Scalar(batch)
        return Value(total: bceMean + 1 - dice, bce: bceMean, softDice: dice)
    }

    /// dz = dL/dz (overwrites). Call after `forward` with the same masks.
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public func backward(masks m: UnsafePointer<Scalar>, batch: Int, into dz: UnsafeMutablePointer<Scalar>) {
        let p = probabilities.pointer
        let invNP = 1 / Scalar(batch * pixels), invN = 1 / Scalar(batch)
        for b in 0..<batch {
            let a = sums.pointer[2 * b], bb = sums.pointer[2 * b + 1]
            let invB2 = 1 / (bb * bb)
            for j in (b * pixels)..<((b + 1) * pixels) {
                let pj = p[j], mj = m[j]
                let c = (2 * mj * bb - a) * invB2
                dz[j] = (pj - mj) * invNP - invN * c * pj * (1 - pj)
            }
        }
    }

    /// dzt = (d^2 L / dz^2) zt (overwrites). Call after `forward`.
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public func tangent(
        masks m: UnsafePointer<Scalar>, logitTangent zt: UnsafePointer<Scalar>, batch: Int,
        into dzt: UnsafeMutablePointer<Scalar>
    ) {
        let p = probabilities.pointer
        let invNP = 1 / Scalar(batch * pixels), invN = 1 / Scalar(batch)
        for b in 0..<batch {
            let a = sums.pointer[2 * b], bb = sums.pointer[2 * b + 1]
            let range = (b * pixels)..<((b + 1) * pixels)
            var at: Scalar = 0, bt: Scalar = 0
            for j in range {
                let pj = p[j]
                let pt = pj * (1 - pj) * zt[j]
                at += pt * m[j]
                bt += pt
            }
            at *= 2
            let invB2 = 1 / (bb * bb), invB3 = invB2 / bb
            for j in range {
                let pj = p[j], mj = m[j]
                let s = pj * (1 - pj)
                let pt = s * zt[j]
                let c = (2 * mj * bb - a) * invB2
                let ct = (2 * mj * bt - at) * invB2 - 2 * (2 * mj * bb - a) * bt * invB3
                let st = (1 - 2 * pj) * pt
                dzt[j] = pt * invNP - invN * (ct * s + c * st)
            }
        }
    }

    /// Sigmoid probabilities from the last `forward`.
    public var lastProbabilities: UnsafePointer<Scalar> { UnsafePointer(probabilities.pointer) }
}
