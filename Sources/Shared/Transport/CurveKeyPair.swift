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
        return CurveKeyPair(publicKey: String(zeroTerminated: pub), secretKey: String(zeroTerminated: sec))
    }

    /// Writes `base.key` (mode 0600) and `base.pub`. Refuses to overwrite.
    public func write(base: String) throws(SecurityError) {
        let fm = FileManager.default
        for path in [base + ".key", base + ".pub"] where fm.fileExists(atPath: path) {
            throw .file(path: path, reason: "already exists; refusing to overwrite a key")
        }
        let secret = secretFileContents
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

    /// Reads a `.key` file: it must not be readable by others, nor by its group unless root
    /// owns it, and its keys must be valid Z85 and belong together.
    ///
    /// The rule is PostgreSQL's for its server key: mode 0600 or less when the file belongs to
    /// anyone but root; 0640 or less when root owns it, since then only root (who can read
    /// anything) and one chosen group can read it. Kubernetes mounts a Secret exactly so for a
    /// pod with an `fsGroup`: owned by root, group-readable by the pod's group, whatever
    /// `defaultMode` asks.
    public static func read(secretFile path: String) throws(SecurityError) -> CurveKeyPair {
        var info = stat()
        guard stat(path, &info) == 0 else { throw .file(path: path, reason: "cannot read: \(String(cString: strerror(errno)))") }
        guard info.st_mode & (info.st_uid == 0 ? 0o037 : 0o077) == 0 else {
            throw .file(path: path, reason: String(format: "permissions %o are too loose; a secret key must be mode 0600 (chmod 600 %@), or 0640 if root owns it", info.st_mode & 0o777, path))
        }
        // A key this process may not read (a Secret mounted without the pod's fsGroup) is
        // "permission denied", not "not UTF-8 text".
        guard access(path, R_OK) == 0 else { throw .file(path: path, reason: "cannot read: \(String(cString: strerror(errno)))") }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw .file(path: path, reason: "not UTF-8 text") }
        return try parse(secretText: text, source: path)
    }

    /// The text of a `.key` file: both keys, and a warning to keep it private.
    public var secretFileContents: String {
        "# MedMAML CURVE key pair. Keep this file private (mode 0600).\npublic-key = \"\(publicKey)\"\nsecret-key = \"\(secretKey)\"\n"
    }

    /// Parses the text of a `.key` file (from a file, or from a pipe); `source` names it in errors.
    public static func parse(secretText text: String, source path: String) throws(SecurityError) -> CurveKeyPair {
        guard let secret = field("secret-key", in: text) else {
            throw .file(path: path, reason: "no secret-key = \"<40 Z85 characters>\" line (is this a .pub file?)")
        }
        guard valid(secret) else { throw .file(path: path, reason: "the secret key is not 40 valid Z85 characters") }
        var derived = [CChar](repeating: 0, count: 41)
        guard zmq_curve_public(&derived, secret) == 0 else { throw .file(path: path, reason: "cannot derive the public key") }
        let publicKey = String(zeroTerminated: derived)
        if let stated = field("public-key", in: text), stated != publicKey {
            throw .file(path: path, reason: "the public key in the file does not belong to its secret key")
        }
        return CurveKeyPair(publicKey: publicKey, secretKey: secret)
    }

    /// The value of a `name = "<key>"` line of `text`, if it is a valid Z85 key.
    public static func key(named name: String, in text: String) -> String? {
        field(name, in: text).flatMap { valid($0) ? $0 : nil }
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
