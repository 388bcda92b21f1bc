import ArgumentParser
import Foundation
import Logging
import Transport

extension ClusterOptions {
    /// The policy's rules that need no file, for commands to check before they write anything
    /// (output folder, run file, checkpoints), so a refused command leaves nothing behind.
    func checkPolicy() throws {
        if secretKey != nil && authorizedKeys == nil { throw ValidationError("--secret-key needs --authorized-keys (the workers' public keys)") }
        if authorizedKeys != nil && secretKey == nil { throw ValidationError("--authorized-keys needs --secret-key") }
        if !inProcess && secretKey == nil && localWorkers == 0 && !insecure && !Endpoint.isLoopback(endpoint) {
            throw Self.plaintextRefusal(endpoint)
        }
    }

    static func plaintextRefusal(_ endpoint: String) -> ValidationError {
        ValidationError("refusing to bind \(endpoint) without encryption: give --secret-key and --authorized-keys (see `medmaml-coordinator keygen`), or --insecure to accept unencrypted, unauthenticated traffic")
    }

    /// The coordinator's security from the flags (nil: plaintext), applying the policy:
    /// CURVE with an allowlist when --secret-key is given; throw-away keys for --local-workers
    /// (secure by default); plaintext on anything but loopback only with --insecure.
    func securityForCoordinator(logger: Logger) throws -> (config: SecurityConfig, local: LocalKeys?)? {
        let loopback = Endpoint.isLoopback(endpoint)
        if let secretKey {
            guard let authorizedKeys else { throw ValidationError("--secret-key needs --authorized-keys (the workers' public keys)") }
            let keys = try CurveKeyPair.read(secretFile: secretKey)
            var allowed = try CurveKeyPair.readAuthorized(authorizedKeys)
            var local: LocalKeys?
            if localWorkers > 0 {
                let l = try Self.makeLocalKeys(coordinator: keys)
                allowed.insert(l.worker.publicKey)
                local = l
            }
            logger.info("CURVE encryption on; \(allowed.count) authorized worker key(s)")
            return (SecurityConfig(keys: keys, authorizedKeys: allowed), local)
        }
        if authorizedKeys != nil { throw ValidationError("--authorized-keys needs --secret-key") }
        if localWorkers > 0 && !insecure {
            let keys = try CurveKeyPair.generate()
            let l = try Self.makeLocalKeys(coordinator: keys)
            let allowed: Set<String> = [l.worker.publicKey]
            logger.info("CURVE encryption on with throw-away keys for the local workers")
            return (SecurityConfig(keys: keys, authorizedKeys: allowed), l)
        }
        if !loopback && !insecure {
            throw Self.plaintextRefusal(endpoint)
        }
        if !loopback {
            logger.warning("--insecure: training traffic on \(endpoint) is unencrypted and anyone who can reach it can join the run")
        }
        return nil
    }

    /// A throw-away worker key pair, and the coordinator's public key, for local workers.
    /// They stay in memory: the workers read them from a pipe, so nothing is left on disk.
    static func makeLocalKeys(coordinator: CurveKeyPair) throws -> LocalKeys {
        LocalKeys(worker: try CurveKeyPair.generate(), coordinatorPublicKey: coordinator.publicKey)
    }
}
