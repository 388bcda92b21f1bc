import CZeroMQ
import Foundation
import Logging

/// A ZAP handler (ZeroMQ RFC 27) that admits only CURVE clients whose public key is listed.
///
/// It binds `inproc://zeromq.zap.01` in the coordinator's context when created, which must
/// happen before the CURVE socket binds: with CURVE on and no handler, libzmq accepts any
/// client that knows the server's public key. Every refusal is logged with the peer address
/// and the offered key (public keys only; secret keys are never logged).
public final class ZAPHandler: @unchecked Sendable {
    private let socket: ZMQSocket
    private let allowed: Set<[UInt8]>
    private let logger: Logger
    private var stopping = false
    private let lock = NSLock()
    private let finished = DispatchSemaphore(value: 0)
    public private(set) var refusals = 0

    public init(context: ZMQContext, authorized: Set<String>, logger: Logger) throws {
        guard ZMQContext.has("curve") else { throw SecurityError.unavailable("this libzmq was built without CURVE") }
        socket = try ZMQSocket(context, .rep)
        try socket.bind("inproc://zeromq.zap.01")
        allowed = Set(authorized.compactMap { CurveKeyPair.raw($0) })
        self.logger = logger
        let thread = Thread { [self] in self.serve() }
        thread.name = "medmaml-zap"
        thread.start()
    }

    public func stop() {
        lock.withLock { stopping = true }
        finished.wait()
        socket.close()
    }

    private func serve() {
        defer { finished.signal() }
        while !lock.withLock({ stopping }) {
            guard (try? ZMQSocket.poll([socket], timeoutMilliseconds: 100)[0]) == true,
                  let request = try? socket.receive(dontWait: true, maxFrames: 16)
            else { continue }
            let reply = decide(request)
            _ = try? socket.send(reply)
        }
    }

    /// Request: version, request id, domain, address, identity, mechanism, credentials...
    func decide(_ f: [[UInt8]]) -> [[UInt8]] {
        func answer(_ id: [UInt8], _ code: String, _ text: String, user: String = "") -> [[UInt8]] {
            [Array("1.0".utf8), id, Array(code.utf8), Array(text.utf8), Array(user.utf8), []]
        }
        guard f.count >= 6, String(decoding: f[0], as: UTF8.self) == "1.0" else {
            return answer(f.count > 1 ? f[1] : [], "500", "malformed ZAP request")
        }
        let address = String(decoding: f[3], as: UTF8.self)
        let mechanism = String(decoding: f[5], as: UTF8.self)
        guard mechanism == "CURVE", f.count >= 7, f[6].count == 32 else {
            lock.withLock { refusals += 1 }
            logger.warning("refused a connection without CURVE", metadata: ["peer.address": "\(address)", "mechanism": "\(mechanism)"])
            return answer(f[1], "400", "CURVE required")
        }
        var z85 = [CChar](repeating: 0, count: 41)
        zmq_z85_encode(&z85, f[6], 32)
        let key = String(zeroTerminated: z85)
        guard allowed.contains(f[6]) else {
            lock.withLock { refusals += 1 }
            logger.warning("refused a worker key that is not authorized", metadata: ["peer.address": "\(address)", "peer.key": "\(key)"])
            return answer(f[1], "400", "key not authorized")
        }
        // The key becomes the connection's user id: the coordinator accounts by it.
        return answer(f[1], "200", "OK", user: key)
    }
}
