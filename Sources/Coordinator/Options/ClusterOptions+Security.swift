import ArgumentParser
import Foundation
import Logging
import Transport

extension ClusterOptions {
    /// The coordinator's security from the flags (nil: plaintext), applying the policy:
    /// CURVE with an allowlist when --secret-key is given; throw-away keys for --local-workers
    /// (secure by default); plaintext on anything but loopback only with --insecure.
    func securityForCoordinator(logger: Logger) throws -> (config: SecurityConfig, local: LocalKeys?)? {
        let loopback = Self.isLoopback(endpoint)
        if let secretKey {
            guard let authorizedKeys else { throw ValidationError("--secret-key needs --authorized-keys (the workers' public keys)") }
            let keys = try CurveKeyPair.read(secretFile: secretKey)
            var allowed = try CurveKeyPair.readAuthorized(authorizedKeys)
            var local: LocalKeys?
            if localWorkers > 0 {
                let l = try Self.makeLocalKeys(coordinator: keys)
                allowed.insert(try CurveKeyPair.readPublic(l.workerKey.replacingOccurrences(of: ".key", with: ".pub")))
                local = l
            }
            logger.info("CURVE encryption on; \(allowed.count) authorized worker key(s)")
            return (SecurityConfig(keys: keys, authorizedKeys: allowed), local)
        }
        if authorizedKeys != nil { throw ValidationError("--authorized-keys needs --secret-key") }
        if localWorkers > 0 && !insecure {
            let keys = try CurveKeyPair.generate()
            let l = try Self.makeLocalKeys(coordinator: keys)
            let allowed: Set<String> = [try CurveKeyPair.readPublic(l.workerKey.replacingOccurrences(of: ".key", with: ".pub"))]
            logger.info("CURVE encryption on with throw-away keys for the local workers")
            return (SecurityConfig(keys: keys, authorizedKeys: allowed), l)
        }
        if !loopback && !insecure {
            throw ValidationError("refusing to bind \(endpoint) without encryption: give --secret-key and --authorized-keys (see `medmaml-coordinator keygen`), or --insecure to accept unencrypted, unauthenticated traffic")
        }
        if !loopback {
            logger.warning("--insecure: training traffic on \(endpoint) is unencrypted and anyone who can reach it can join the run")
        }
        return nil
    }

    static func isLoopback(_ endpoint: String) -> Bool {
        if endpoint.hasPrefix("ipc://") || endpoint.hasPrefix("inproc://") { return true }
        guard endpoint.hasPrefix("tcp://") else { return false }
        let rest = endpoint.dropFirst(6)
        let host = rest.hasPrefix("[") ? String(rest.dropFirst().prefix { $0 != "]" }) : String(rest.prefix { $0 != ":" })
        return ["127.0.0.1", "localhost", "::1"].contains(host) || host.hasPrefix("127.")
    }

    /// A private folder with a worker key pair and the coordinator's public key.
    static func makeLocalKeys(coordinator: CurveKeyPair) throws -> LocalKeys {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("medmaml-keys-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        try CurveKeyPair.generate().write(base: folder + "/worker")
        FileManager.default.createFile(atPath: folder + "/coordinator.pub",
                                       contents: Data("public-key = \"\(coordinator.publicKey)\"\n".utf8))
        return LocalKeys(folder: folder, workerKey: folder + "/worker.key", coordinatorPublicKey: folder + "/coordinator.pub")
    }
}
