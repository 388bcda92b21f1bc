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

/// A ZeroMQ socket that moves multipart messages of raw bytes. It knows nothing of what the
/// bytes mean. Not thread-safe: one socket belongs to one thread, as libzmq requires.
public final class ZMQSocket {
    public enum Kind: Int32 { case dealer = 5, router = 6, pull = 7, push = 8, pair = 0, rep = 4 }

    public static let optionRoutingID: Int32 = 5
    public static let optionLinger: Int32 = 17
    public static let optionReconnectInterval: Int32 = 18
    public static let optionMaxMessageSize: Int32 = 22
    public static let optionSendHighWater: Int32 = 23
    public static let optionReceiveHighWater: Int32 = 24
    public static let optionLastEndpoint: Int32 = 32
    public static let optionRouterMandatory: Int32 = 33
    public static let optionTCPKeepalive: Int32 = 34
    public static let optionImmediate: Int32 = 39
    public static let optionCurveServer: Int32 = 47
    public static let optionCurvePublicKey: Int32 = 48
    public static let optionCurveSecretKey: Int32 = 49
    public static let optionCurveServerKey: Int32 = 50
    public static let optionZAPDomain: Int32 = 55
    public static let optionHandshakeInterval: Int32 = 66
    public static let optionReconnectIntervalMax: Int32 = 21

    let handle: UnsafeMutableRawPointer
    public let kind: Kind
    private var closed = false
    /// Held so the context outlives its sockets: `zmq_ctx_term` blocks until all are closed.
    private let context: ZMQContext

    public init(_ context: ZMQContext, _ kind: Kind) throws(ZMQError) {
        guard let h = zmq_socket(context.handle, kind.rawValue) else { throw .last("zmq_socket") }
        handle = h
        self.kind = kind
        self.context = context
        try set(Self.optionLinger, Int32(0))
    }

    deinit { close() }

    public func close() {
        guard !closed else { return }
        closed = true
        zmq_close(handle)
    }

    public func set(_ option: Int32, _ value: Int32) throws(ZMQError) {
        var v = value
        guard zmq_setsockopt(handle, option, &v, MemoryLayout<Int32>.size) == 0 else { throw .last("zmq_setsockopt(\(option))") }
    }

    public func set(_ option: Int32, _ value: Int64) throws(ZMQError) {
        var v = value
        guard zmq_setsockopt(handle, option, &v, MemoryLayout<Int64>.size) == 0 else { throw .last("zmq_setsockopt(\(option))") }
    }

    public func set(_ option: Int32, bytes: [UInt8]) throws(ZMQError) {
        let status = bytes.withUnsafeBytes { zmq_setsockopt(handle, option, $0.baseAddress, $0.count) }
        guard status == 0 else { throw .last("zmq_setsockopt(\(option))") }
    }

    public func bind(_ endpoint: String) throws(ZMQError) {
        guard zmq_bind(handle, endpoint) == 0 else { throw .last("bind \(endpoint)") }
    }

    public func connect(_ endpoint: String) throws(ZMQError) {
        guard zmq_connect(handle, endpoint) == 0 else { throw .last("connect \(endpoint)") }
    }

    public func disconnect(_ endpoint: String) {
        _ = zmq_disconnect(handle, endpoint)
    }

    /// Handshake outcomes reported by `monitorHandshakes`.
    public enum HandshakeEvent: Sendable, Equatable {
        case succeeded
        /// The peer refused our credentials (CURVE key not authorized: ZAP said no).
        case refusedAuthentication(status: UInt32)
        /// The security handshake broke (wrong server key, or one side without CURVE).
        case failedProtocol
        case failedOther
    }

    /// Reports this socket's handshake outcomes on a PAIR socket that the caller polls and
    /// reads with `readHandshakeEvent`.
    public func monitorHandshakes(_ context: ZMQContext) throws(ZMQError) -> ZMQSocket {
        let address = "inproc://medmaml-monitor-\(UUID().uuidString)"
        let events: Int32 = 0x0800 | 0x1000 | 0x2000 | 0x4000
        guard zmq_socket_monitor(handle, address, events) == 0 else { throw .last("zmq_socket_monitor") }
        let pair = try ZMQSocket(context, .pair)
        try pair.connect(address)
        return pair
    }

    /// Decodes one monitor event (frame 1: UInt16 event, UInt32 value; frame 2: address).
    public static func readHandshakeEvent(_ monitor: ZMQSocket) -> HandshakeEvent? {
        guard let frames = try? monitor.receive(dontWait: true), let first = frames.first, first.count >= 6 else { return nil }
        let event = UInt16(first[0]) | UInt16(first[1]) << 8
        let value = UInt32(first[2]) | UInt32(first[3]) << 8 | UInt32(first[4]) << 16 | UInt32(first[5]) << 24
        switch event {
        case 0x1000: return .succeeded
        case 0x4000: return .refusedAuthentication(status: value)
        case 0x2000: return .failedProtocol
        default: return .failedOther
        }
    }

    /// The endpoint actually bound (resolves `tcp://*:0` to a port).
    public var lastEndpoint: String {
        var buffer = [CChar](repeating: 0, count: 512)
        var size = buffer.count
        _ = zmq_getsockopt(handle, Self.optionLastEndpoint, &buffer, &size)
        return String(cString: buffer)
    }

    /// Sends a multipart message. Returns false if it would block (with `dontWait`) or the
    /// peer is unroutable (ROUTER with mandatory routing).
    @discardableResult
    public func send(_ frames: [[UInt8]], dontWait: Bool = false) throws(ZMQError) -> Bool {
        precondition(!frames.isEmpty, "a message needs a frame")
        for (i, frame) in frames.enumerated() {
            var flags: Int32 = i < frames.count - 1 ? 2 : 0   // ZMQ_SNDMORE
            if dontWait { flags |= 1 }                         // ZMQ_DONTWAIT
            let n = frame.withUnsafeBytes { zmq_send(handle, $0.baseAddress, $0.count, flags) }
            if n < 0 {
                let e = zmq_errno()
                if e == EAGAIN || e == EHOSTUNREACH { return false }
                throw ZMQError(operation: "zmq_send", code: e)
            }
        }
        return true
    }

    /// Receives one multipart message of at most `maxFrames` frames (the rest of a longer
    /// message is read and dropped, and nil is returned so the caller counts it as
    /// malformed). Returns nil as well if nothing is waiting with `dontWait`.
    public func receive(dontWait: Bool = false, maxFrames: Int = 16) throws(ZMQError) -> [[UInt8]]? {
        var frames: [[UInt8]] = []
        var overflow = false
        while true {
            var msg = zmq_msg_t()
            zmq_msg_init(&msg)
            defer { zmq_msg_close(&msg) }
            let n = zmq_msg_recv(&msg, handle, dontWait && frames.isEmpty ? 1 : 0)
            if n < 0 {
                let e = zmq_errno()
                if e == EAGAIN && frames.isEmpty { return nil }
                throw ZMQError(operation: "zmq_msg_recv", code: e)
            }
            if frames.count < maxFrames {
                let size = zmq_msg_size(&msg)
                let data = zmq_msg_data(&msg)
                frames.append(size == 0 ? [] : Array(UnsafeRawBufferPointer(start: data, count: size)))
            } else {
                overflow = true
            }
            if zmq_msg_more(&msg) == 0 { break }
        }
        return overflow ? nil : frames
    }

    /// Waits until one of `sockets` has a message or `timeoutMilliseconds` pass (-1: forever).
    /// Returns which are readable. A signal interrupts the wait (returns all false).
    public static func poll(_ sockets: [ZMQSocket], timeoutMilliseconds: Int) throws(ZMQError) -> [Bool] {
        var items = sockets.map { zmq_pollitem_t(socket: $0.handle, fd: 0, events: 1, revents: 0) }
        let n = zmq_poll(&items, Int32(items.count), timeoutMilliseconds)
        if n < 0 {
            if zmq_errno() == EINTR { return Array(repeating: false, count: sockets.count) }
            throw .last("zmq_poll")
        }
        return items.map { $0.revents & 1 != 0 }
    }
}
