import CZeroMQ
import Foundation
import Logging

/// A CURVE key pair in Z85 text (40 characters each), as `zmq_curve_keypair` makes them.
///
/// Files: `name.key` holds both keys (mode 0600, the secret never leaves it); `name.pub`
/// holds the public key. Lines are `public-key = "<z85>"` and `secret-key = "<z85>"`; `#`
/// starts a comment. A loaded secret key must derive the public key beside it.
public struct CurveKeyPair: Sendable {
    public let publicKey: String
    let secretKey: String

    /// A fresh key pair from libsodium through libzmq.
    public static func generate() throws(SecurityError) -> CurveKeyPair {
        var pub = [CChar](repeating: 0, count: 41), sec = [CChar](repeating: 0, count: 41)
        guard zmq_curve_keypair(&pub, &sec) == 0 else { throw .unavailable("this libzmq has no CURVE support") }
        return CurveKeyPair(publicKey: String(cString: pub), secretKey: String(cString: sec))
    }

    /// Writes `base.key` (mode 0600) and `base.pub`. Refuses to overwrite.
    public func write(base: String) throws(SecurityError) {
        let fm = FileManager.default
        for path in [base + ".key", base + ".pub"] where fm.fileExists(atPath: path) {
            throw .file(path: path, reason: "already exists; refusing to overwrite a key")
        }
        let secret = "# MedMAML CURVE key pair. Keep this file private (mode 0600).\npublic-key = \"\(publicKey)\"\nsecret-key = \"\(secretKey)\"\n"
        let pub = "# MedMAML CURVE public key\npublic-key = \"\(publicKey)\"\n"
        let fd = open(base + ".key", O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard fd >= 0 else { throw .file(path: base + ".key", reason: String(cString: strerror(errno))) }
        let bytes = Array(secret.utf8)
        let written = bytes.withUnsafeBytes { Foundation.write(fd, $0.baseAddress, $0.count) }
        fsync(fd)
        close(fd)
        guard written == bytes.count else { throw .file(path: base + ".key", reason: "short write") }
        guard fm.createFile(atPath: base + ".pub", contents: Data(pub.utf8), attributes: [.posixPermissions: 0o644]) else {
            throw .file(path: base + ".pub", reason: "cannot create")
        }
    }

    /// Reads a `.key` file: it must not be readable by group or others, and its keys must be
    /// valid Z85 and belong together.
    public static func read(secretFile path: String) throws(SecurityError) -> CurveKeyPair {
        var info = stat()
        guard stat(path, &info) == 0 else { throw .file(path: path, reason: "cannot read: \(String(cString: strerror(errno)))") }
        guard info.st_mode & 0o077 == 0 else {
            throw .file(path: path, reason: String(format: "permissions %o are too loose; a secret key must be mode 0600 (chmod 600 %@)", info.st_mode & 0o777, path))
        }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw .file(path: path, reason: "not UTF-8 text") }
        guard let secret = field("secret-key", in: text) else {
            throw .file(path: path, reason: "no secret-key = \"<40 Z85 characters>\" line (is this a .pub file?)")
        }
        guard valid(secret) else { throw .file(path: path, reason: "the secret key is not 40 valid Z85 characters") }
        var derived = [CChar](repeating: 0, count: 41)
        guard zmq_curve_public(&derived, secret) == 0 else { throw .file(path: path, reason: "cannot derive the public key") }
        let publicKey = String(cString: derived)
        if let stated = field("public-key", in: text), stated != publicKey {
            throw .file(path: path, reason: "the public key in the file does not belong to its secret key")
        }
        return CurveKeyPair(publicKey: publicKey, secretKey: secret)
    }

    /// Reads a public key from a `.pub` file (or the public line of a `.key` file).
    public static func readPublic(_ path: String) throws(SecurityError) -> String {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw .file(path: path, reason: "cannot read") }
        guard let key = field("public-key", in: text) ?? bareKey(text), valid(key) else {
            throw .file(path: path, reason: "no valid public key (public-key = \"<40 Z85 characters>\")")
        }
        return key
    }

    /// Public keys from a folder of `.pub` files, or from one file with a key per line.
    public static func readAuthorized(_ path: String) throws(SecurityError) -> Set<String> {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw .file(path: path, reason: "no such file or folder")
        }
        var keys = Set<String>()
        if isDirectory.boolValue {
            let files = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
            for f in files.sorted() where f.hasSuffix(".pub") { keys.insert(try readPublic(path + "/" + f)) }
        } else {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw .file(path: path, reason: "cannot read") }
            for (n, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                // `#` starts a comment at the start of a line or after a space; Z85 keys may contain `#`.
                var line = raw.trimmingCharacters(in: .whitespaces)
                if line.hasPrefix("#") { continue }
                if let comment = line.range(of: #"\s#"#, options: .regularExpression) { line = String(line[..<comment.lowerBound]) }
                if line.isEmpty { continue }
                guard let key = field("public-key", in: line) ?? bareKey(line), valid(key) else {
                    throw .file(path: path, reason: "line \(n + 1) is not a public key")
                }
                keys.insert(key)
            }
        }
        guard !keys.isEmpty else { throw .file(path: path, reason: "no public keys found") }
        return keys
    }

    static func field(_ name: String, in text: String) -> String? {
        for line in text.split(separator: "\n") {
            let t = line.trimmingCharacters(in: .whitespaces)
            guard t.hasPrefix(name) else { continue }
            let parts = t.split(separator: "\"")
            if parts.count >= 2 { return String(parts[1]) }
        }
        return nil
    }

    static func bareKey(_ text: String) -> String? {
        let t = text.trimmingCharacters(in: .whitespacesAndNewlines)
        return t.count == 40 ? t : nil
    }

    static func valid(_ z85: String) -> Bool {
        guard z85.utf8.count == 40 else { return false }
        var out = [UInt8](repeating: 0, count: 32)
        return zmq_z85_decode(&out, z85) != nil
    }

    /// The 32 raw bytes of a Z85 key.
    static func raw(_ z85: String) -> [UInt8]? {
        var out = [UInt8](repeating: 0, count: 32)
        return zmq_z85_decode(&out, z85) != nil ? out : nil
    }
}

/// Security settings of a coordinator or worker.
public struct SecurityConfig: Sendable {
    public let keys: CurveKeyPair
    /// Coordinator: the workers' public keys allowed in.
    public let authorizedKeys: Set<String>
    /// Worker: the coordinator's public key.
    public let serverKey: String?

    public init(keys: CurveKeyPair, authorizedKeys: Set<String> = [], serverKey: String? = nil) {
        self.keys = keys
        self.authorizedKeys = authorizedKeys
        self.serverKey = serverKey
    }

    /// Makes `socket` a CURVE server; ZAP (domain "medmaml") decides who may connect.
    public func configureServer(_ socket: ZMQSocket) throws(ZMQError) {
        try socket.set(ZMQSocket.optionCurveServer, Int32(1))
        try socket.set(ZMQSocket.optionCurveSecretKey, bytes: Array(keys.secretKey.utf8))
        try socket.set(ZMQSocket.optionZAPDomain, bytes: Array("medmaml".utf8))
    }

    /// Makes `socket` a CURVE client of the server with public key `serverKey`.
    public func configureClient(_ socket: ZMQSocket) throws(ZMQError) {
        try socket.set(ZMQSocket.optionCurveServerKey, bytes: Array((serverKey ?? "").utf8))
        try socket.set(ZMQSocket.optionCurvePublicKey, bytes: Array(keys.publicKey.utf8))
        try socket.set(ZMQSocket.optionCurveSecretKey, bytes: Array(keys.secretKey.utf8))
    }
}

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
        func answer(_ id: [UInt8], _ code: String, _ text: String) -> [[UInt8]] {
            [Array("1.0".utf8), id, Array(code.utf8), Array(text.utf8), [], []]
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
        guard allowed.contains(f[6]) else {
            lock.withLock { refusals += 1 }
            var z85 = [CChar](repeating: 0, count: 41)
            zmq_z85_encode(&z85, f[6], 32)
            logger.warning("refused a worker key that is not authorized", metadata: ["peer.address": "\(address)", "peer.key": "\(String(cString: z85))"])
            return answer(f[1], "400", "key not authorized")
        }
        return answer(f[1], "200", "OK")
    }
}

/// A key file or security setting that cannot be used.
public enum SecurityError: Error, CustomStringConvertible {
    case file(path: String, reason: String)
    case unavailable(String)
    case insecure(String)

    public var description: String {
        switch self {
        case .file(let p, let r): "\(p): \(r)"
        case .unavailable(let r): r
        case .insecure(let r): r
        }
    }
}
