#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A fixed-size, 64-byte aligned buffer of scalars that is never copied implicitly.
///
/// Engine workspaces are made of these so that hot loops work on raw pointers with no
/// copy-on-write checks and no allocation. Contents start zeroed.
///
/// Buffers of `mappedBytes` or more are anonymous memory maps: the kernel hands out zeroed
/// pages on first touch, so a buffer that a computation never writes (the tangents of a
/// network that only runs forward passes, say) occupies address space but no memory, and
/// building a network does not write its whole size once.
public final class Storage<Scalar: EngineScalar>: @unchecked Sendable {
    public let count: Int
    public let pointer: UnsafeMutablePointer<Scalar>
    /// The length of the memory map, or 0 for a buffer from the allocator.
    private let mappedLength: Int

    /// The size from which a buffer is mapped instead of allocated (1 MiB).
    public static var mappedBytes: Int { 1 << 20 }

    public init(count: Int) {
        precondition(count >= 0, "Storage count must be non-negative")
        self.count = count
        let bytes = max(1, count) * MemoryLayout<Scalar>.stride
        if bytes >= Self.mappedBytes,
           let raw = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
           raw != MAP_FAILED {
            // Page-aligned (a multiple of 64) and zero-filled by the kernel.
            mappedLength = bytes
            pointer = raw.bindMemory(to: Scalar.self, capacity: max(1, count))
        } else {
            mappedLength = 0
            let raw = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
            pointer = raw.bindMemory(to: Scalar.self, capacity: max(1, count))
            pointer.initialize(repeating: 0, count: max(1, count))
        }
    }

    deinit {
        if mappedLength > 0 {
            munmap(UnsafeMutableRawPointer(pointer), mappedLength)
        } else {
            UnsafeMutableRawPointer(pointer).deallocate()
        }
    }

    /// Whether the buffer is a memory map (its untouched pages take no memory).
    public var isMapped: Bool { mappedLength > 0 }

    /// The bytes of the buffer held in memory: for a map, its pages that have been touched
    /// (`mincore`); for an allocated buffer, all of it.
    public var residentBytes: Int {
        guard mappedLength > 0 else { return max(1, count) * MemoryLayout<Scalar>.stride }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        var pages = [UInt8](repeating: 0, count: (mappedLength + page - 1) / page)
        guard mincore(UnsafeMutableRawPointer(pointer), mappedLength, &pages) == 0 else { return mappedLength }
        return pages.reduce(0) { $0 + Int($1 & 1) } * page
    }

    public var buffer: UnsafeMutableBufferPointer<Scalar> {
        UnsafeMutableBufferPointer(start: pointer, count: count)
    }

    public func zero() {
        pointer.update(repeating: 0, count: count)
    }
}
