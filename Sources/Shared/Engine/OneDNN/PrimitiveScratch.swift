import CDNNL

/// Scratch memory for the primitives of one network (one per thread): growable slots for
/// staged operands and the primitives' scratchpad, and the stream they run on.
final class PrimitiveScratch {
    private var slots: [(pointer: UnsafeMutableRawPointer, bytes: Int)] = []
    private var scratchpad: (pointer: UnsafeMutableRawPointer, bytes: Int)?
    let stream: dnnl_stream_t

    init() {
        var stream: dnnl_stream_t?
        check(dnnl_stream_create(&stream, cpuEngine, UInt32(dnnl_stream_default_flags.rawValue)), "stream")
        self.stream = stream!
    }

    deinit {
        for slot in slots { slot.pointer.deallocate() }
        scratchpad?.pointer.deallocate()
        dnnl_stream_destroy(stream)
    }

    /// Slot `index`, at least `bytes` long; its contents are undefined.
    func slot(_ index: Int, bytes: Int) -> UnsafeMutableRawPointer {
        while slots.count <= index { slots.append((UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 64), 64)) }
        if slots[index].bytes < bytes {
            slots[index].pointer.deallocate()
            slots[index] = (UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64), bytes)
        }
        return slots[index].pointer
    }

    /// The primitives' scratchpad, at least `bytes` long.
    func scratchpad(bytes: Int) -> UnsafeMutableRawPointer {
        if let scratchpad, scratchpad.bytes >= bytes { return scratchpad.pointer }
        scratchpad?.pointer.deallocate()
        let grown = (pointer: UnsafeMutableRawPointer.allocate(byteCount: max(64, bytes), alignment: 64), bytes: max(64, bytes))
        scratchpad = grown
        return grown.pointer
    }
}
