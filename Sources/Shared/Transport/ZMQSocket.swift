import CZeroMQ
import Foundation

/// A ZeroMQ socket that moves multipart messages of raw bytes. It knows nothing of what the
/// bytes mean. Not thread-safe: one socket belongs to one thread, as libzmq requires.
public final class ZMQSocket {
    /// Socket types, by the C header's constants.
    public struct Kind: Sendable, Equatable {
        let rawValue: Int32
        public static let pair = Kind(rawValue: ZMQ_PAIR)
        public static let rep = Kind(rawValue: ZMQ_REP)
        public static let dealer = Kind(rawValue: ZMQ_DEALER)
        public static let router = Kind(rawValue: ZMQ_ROUTER)
        public static let pull = Kind(rawValue: ZMQ_PULL)
        public static let push = Kind(rawValue: ZMQ_PUSH)
    }

    /// Socket options MedMAML sets, by the C header's constants.
    public struct Option: Sendable, Equatable {
        let rawValue: Int32
        public static let routingID = Option(rawValue: ZMQ_ROUTING_ID)
        public static let linger = Option(rawValue: ZMQ_LINGER)
        public static let maximumMessageSize = Option(rawValue: ZMQ_MAXMSGSIZE)
        public static let sendHighWater = Option(rawValue: ZMQ_SNDHWM)
        public static let receiveHighWater = Option(rawValue: ZMQ_RCVHWM)
        public static let routerMandatory = Option(rawValue: ZMQ_ROUTER_MANDATORY)
        public static let curveServer = Option(rawValue: ZMQ_CURVE_SERVER)
        public static let curvePublicKey = Option(rawValue: ZMQ_CURVE_PUBLICKEY)
        public static let curveSecretKey = Option(rawValue: ZMQ_CURVE_SECRETKEY)
        public static let curveServerKey = Option(rawValue: ZMQ_CURVE_SERVERKEY)
        public static let zapDomain = Option(rawValue: ZMQ_ZAP_DOMAIN)
    }

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
        try set(.linger, Int32(0))
    }

    deinit { close() }

    public func close() {
        guard !closed else { return }
        closed = true
        zmq_close(handle)
    }

    public func set(_ option: Option, _ value: Int32) throws(ZMQError) {
        var v = value
        guard zmq_setsockopt(handle, option.rawValue, &v, MemoryLayout<Int32>.size) == 0 else { throw .last("zmq_setsockopt(\(option.rawValue))") }
    }

    public func set(_ option: Option, _ value: Int64) throws(ZMQError) {
        var v = value
        guard zmq_setsockopt(handle, option.rawValue, &v, MemoryLayout<Int64>.size) == 0 else { throw .last("zmq_setsockopt(\(option.rawValue))") }
    }

    public func set(_ option: Option, bytes: [UInt8]) throws(ZMQError) {
        let status = bytes.withUnsafeBytes { zmq_setsockopt(handle, option.rawValue, $0.baseAddress, $0.count) }
        guard status == 0 else { throw .last("zmq_setsockopt(\(option.rawValue))") }
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
        let events = ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_SUCCEEDED
            | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH
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
        switch Int32(event) {
        case ZMQ_EVENT_HANDSHAKE_SUCCEEDED: return .succeeded
        case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH: return .refusedAuthentication(status: value)
        case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL: return .failedProtocol
        default: return .failedOther
        }
    }

    /// The endpoint actually bound (resolves `tcp://*:0` to a port).
    public var lastEndpoint: String {
        var buffer = [CChar](repeating: 0, count: 512)
        var size = buffer.count
        _ = zmq_getsockopt(handle, ZMQ_LAST_ENDPOINT, &buffer, &size)
        return String(zeroTerminated: buffer)
    }

    /// Sends a multipart message. Returns false if it would block (with `dontWait`) or the
    /// peer is unroutable (ROUTER with mandatory routing).
    @discardableResult
    public func send(_ frames: [[UInt8]], dontWait: Bool = false) throws(ZMQError) -> Bool {
        precondition(!frames.isEmpty, "a message needs a frame")
        for (i, frame) in frames.enumerated() {
            var flags: Int32 = i < frames.count - 1 ? ZMQ_SNDMORE : 0
            if dontWait { flags |= ZMQ_DONTWAIT }
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
        try receiveMessage(dontWait: dontWait, maxFrames: maxFrames)?.frames
    }

    /// A received message and the user id the ZAP handler gave its connection (a CURVE
    /// worker's public key), if any.
    public struct Received: Sendable {
        public var frames: [[UInt8]]
        public var userID: String?
    }

    /// As `receive`, with the connection's ZAP user id.
    public func receiveMessage(dontWait: Bool = false, maxFrames: Int = 16) throws(ZMQError) -> Received? {
        // libzmq frees a closed socket: its handle must not be used again.
        guard !closed else { throw ZMQError(operation: "zmq_msg_recv", code: ENOTSOCK) }
        var frames: [[UInt8]] = []
        var userID: String?
        var overflow = false
        while true {
            var msg = zmq_msg_t()
            zmq_msg_init(&msg)
            defer { zmq_msg_close(&msg) }
            let n = zmq_msg_recv(&msg, handle, dontWait && frames.isEmpty ? ZMQ_DONTWAIT : 0)
            if n < 0 {
                let e = zmq_errno()
                if e == EAGAIN && frames.isEmpty { return nil }
                throw ZMQError(operation: "zmq_msg_recv", code: e)
            }
            // A ROUTER's first frame is the routing id it made itself: metadata rides on the others.
            if userID == nil, let property = zmq_msg_gets(&msg, "User-Id") {
                let text = String(cString: property)
                userID = text.isEmpty ? nil : text
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
        return overflow ? nil : Received(frames: frames, userID: userID)
    }

    /// Waits until one of `sockets` has a message or `timeoutMilliseconds` pass (-1: forever).
    /// Returns which are readable. A signal interrupts the wait (returns all false).
    public static func poll(_ sockets: [ZMQSocket], timeoutMilliseconds: Int) throws(ZMQError) -> [Bool] {
        var items = sockets.map { zmq_pollitem_t(socket: $0.handle, fd: 0, events: Int16(ZMQ_POLLIN), revents: 0) }
        let n = zmq_poll(&items, Int32(items.count), timeoutMilliseconds)
        if n < 0 {
            if zmq_errno() == EINTR { return Array(repeating: false, count: sockets.count) }
            throw .last("zmq_poll")
        }
        return items.map { $0.revents & Int16(ZMQ_POLLIN) != 0 }
    }
}

extension String {
    /// The text of a character buffer that libzmq filled with a NUL-terminated string, read
    /// no further than the buffer: without a terminator it ends at the buffer's end.
    init(zeroTerminated buffer: [CChar]) {
        self.init(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
