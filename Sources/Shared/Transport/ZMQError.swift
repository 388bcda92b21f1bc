import CZeroMQ
import Foundation

/// A failed ZeroMQ call.
public struct ZMQError: Error, CustomStringConvertible {
    public var operation: String
    public var code: Int32
    public var description: String { "\(operation): \(String(cString: zmq_strerror(code)))" }
    public var isInterrupted: Bool { code == EINTR }
    public var wouldBlock: Bool { code == EAGAIN }

    static func last(_ operation: String) -> ZMQError { ZMQError(operation: operation, code: zmq_errno()) }
}
