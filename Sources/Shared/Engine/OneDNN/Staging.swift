import CDNNL

/// The tensors staged in the primitives' layouts during one layer call: a plain tensor
/// staged twice for the same layout is reordered once.
struct Staging {
    private let scratch: PrimitiveScratch
    private var staged: [(plain: UnsafeRawPointer, layoutClass: Int, slot: UnsafeMutableRawPointer)] = []
    private var nextSlot = 0

    init(_ scratch: PrimitiveScratch) { self.scratch = scratch }

    var stream: dnnl_stream_t { scratch.stream }

    /// Records `copy` as `plain` staged in `operand`'s layout (made elsewhere), so that a
    /// later `stage` of the same tensor in the same layout uses it.
    mutating func adopt(_ operand: Operand, _ plain: UnsafeRawPointer, staged copy: UnsafeMutableRawPointer) {
        staged.append((plain, operand.layoutClass, copy))
    }

    /// An input: the plain tensor itself if the layouts agree, else its staged copy.
    mutating func stage(_ operand: Operand, _ plain: UnsafeRawPointer) -> UnsafeRawPointer {
        if operand.same { return plain }
        if let hit = staged.first(where: { $0.plain == plain && $0.layoutClass == operand.layoutClass }) {
            return UnsafeRawPointer(hit.slot)
        }
        let slot = scratch.slot(nextSlot, bytes: operand.bytes)
        nextSlot += 1
        operand.importPlain(plain, into: slot, stream: scratch.stream)
        staged.append((plain, operand.layoutClass, slot))
        return UnsafeRawPointer(slot)
    }

    /// Where a primitive writes an output: straight into `plain` when the layouts agree (and
    /// `plain` is given), else a fresh slot that `finish` moves into the plain tensor.
    mutating func output(_ operand: Operand, _ plain: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer {
        if operand.same, let plain { return plain }
        let slot = scratch.slot(nextSlot, bytes: operand.bytes)
        nextSlot += 1
        return slot
    }

    /// Moves (or adds) an output into its plain tensor, unless it was written there.
    func finish(_ operand: Operand, _ result: UnsafeMutableRawPointer, into plain: UnsafeMutableRawPointer, adding: Bool) {
        if result == plain { return }
        if operand.same && !adding {
            plain.copyMemory(from: result, byteCount: operand.bytes)
            return
        }
        operand.exportPlain(result, into: plain, adding: adding, stream: scratch.stream)
    }
}
