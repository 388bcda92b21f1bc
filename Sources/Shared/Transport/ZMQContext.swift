import CZeroMQ

/// A ZeroMQ context (one per process). Thread-safe.
public final class ZMQContext: @unchecked Sendable {
    let handle: UnsafeMutableRawPointer

    public init() {
        handle = zmq_ctx_new()
    }

    deinit {
        zmq_ctx_term(handle)
    }

    /// libzmq's version, for example "4.3.4".
    public static var version: String {
        var major: Int32 = 0, minor: Int32 = 0, patch: Int32 = 0
        zmq_version(&major, &minor, &patch)
        return "\(major).\(minor).\(patch)"
    }

    /// Whether libzmq was built with the given capability ("curve", "ipc", ...).
    public static func has(_ capability: String) -> Bool { zmq_has(capability) != 0 }
}
