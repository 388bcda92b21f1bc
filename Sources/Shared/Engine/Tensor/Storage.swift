/// A fixed-size, 64-byte aligned buffer of scalars that is never copied implicitly.
///
/// Engine workspaces are made of these so that hot loops work on raw pointers with no
/// copy-on-write checks and no allocation. Contents start zeroed.
public final class Storage<Scalar: EngineScalar>: @unchecked Sendable {
    public let count: Int
    public let pointer: UnsafeMutablePointer<Scalar>

    public init(count: Int) {
        precondition(count >= 0, "Storage count must be non-negative")
        self.count = count
        let raw = UnsafeMutableRawPointer.allocate(
            byteCount: max(1, count) * MemoryLayout<Scalar>.stride, alignment: 64)
        pointer = raw.bindMemory(to: Scalar.self, capacity: max(1, count))
        pointer.initialize(repeating: 0, count: max(1, count))
    }

    deinit {
        UnsafeMutableRawPointer(pointer).deallocate()
    }

    public var buffer: UnsafeMutableBufferPointer<Scalar> {
        UnsafeMutableBufferPointer(start: pointer, count: count)
    }

    public func zero() {
        pointer.update(repeating: 0, count: count)
    }
}
