import Engine
import Foundation
import MetaLearning
import Testing
import TestSupport
import Transport
import Wire

/// CURVE encryption and the worker allowlist, with real processes.
@Suite(.serialized) struct SecurityTests {
    static let common = ["--image-size", "32", "--base-channels", "8", "--meta-batch", "4", "--seed", "5", "--outer-steps", "8",
                         "--checkpoint-every", "0"]
    let folder = TemporaryFolder()

    func keygen(_ name: String) throws -> String {
        let p = try ChildProcess(executable("medmaml-coordinator"), ["keygen", "--out", folder.path + "/keys/" + name],
                                 name: "keygen-\(name)", folder: folder.path)
        #expect(p.waitExit() == 0, "\(p.stderr)")
        return folder.path + "/keys/" + name
    }

    func coordinator(port: Int, _ extra: [String], name: String = "coordinator") throws -> ChildProcess {
        try ChildProcess(executable("medmaml-coordinator"),
                         ["train"] + Self.common + ["--bind", "tcp://127.0.0.1:\(port)", "--checkpoint-dir", folder.path + "/" + name] + extra,
                         name: name, folder: folder.path)
    }

    func worker(port: Int, _ extra: [String], name: String) throws -> ChildProcess {
        try ChildProcess(executable("medmaml-worker"),
                         ["--connect", "tcp://127.0.0.1:\(port)", "--threads", "2", "--name", name, "--idle-timeout", "30"] + extra,
                         name: name, folder: folder.path)
    }

    @Test func keygenWritesAPrivateKeyPair() throws {
        let base = try keygen("alpha")
        var info = stat()
        stat(base + ".key", &info)
        #expect(info.st_mode & 0o777 == 0o600)
        let pair = try CurveKeyPair.read(secretFile: base + ".key")
        #expect(try CurveKeyPair.readPublic(base + ".pub") == pair.publicKey)
        // Keys are never overwritten, and the secret never appears on stdout.
        let again = try ChildProcess(executable("medmaml-coordinator"), ["keygen", "--out", base], name: "keygen-again", folder: folder.path)
        #expect(again.waitExit() != 0)
        let text = try String(contentsOfFile: base + ".key", encoding: .utf8)
        let secret = text.split(separator: "\"")[3]
        let first = try ChildProcess(executable("medmaml-coordinator"), ["keygen", "--out", folder.path + "/keys/beta"], name: "keygen-beta2", folder: folder.path)
        _ = first.waitExit()
        #expect(!first.stdout.contains(String(secret)))
    }

    @Test func badKeyFilesAreClearErrors() throws {
        let base = try keygen("loose")
        chmod(base + ".key", 0o644)
        #expect(throws: SecurityError.self) { try CurveKeyPair.read(secretFile: base + ".key") }
        do { _ = try CurveKeyPair.read(secretFile: base + ".key") } catch { #expect("\(error)".contains("too loose")) }
        let garbage = try folder.write("garbage.key", Data("secret-key = \"not a key\"\n".utf8))
        chmod(garbage, 0o600)
        #expect(throws: SecurityError.self) { try CurveKeyPair.read(secretFile: garbage) }
        #expect(throws: SecurityError.self) { try CurveKeyPair.read(secretFile: base + ".pub") }
        let port = freePort()
        let c = try coordinator(port: port, ["--secret-key", base + ".key", "--authorized-keys", base + ".pub"])
        #expect(c.waitExit() != 0)
        #expect(c.stderr.contains("too loose"))
        #expect(!c.stderr.contains("secret-key"))
    }

    /// A Kubernetes Secret mounted for a pod with an fsGroup is owned by root and readable by
    /// the pod's group (0440): accepted, as PostgreSQL accepts its key so. Group-readable keys of
    /// any other owner, keys root's group may write, and keys others may read are refused.
    @Test func aRootOwnedKeyMayBeReadableByItsGroup() throws {
        let key = try keygen("secret-volume") + ".key"
        func refused(_ mode: mode_t, owner: uid_t, _ what: String) {
            chown(key, owner, 10001)
            chmod(key, mode)
            do { _ = try CurveKeyPair.read(secretFile: key); Issue.record("accepted \(what)") } catch {
                #expect("\(error)".contains("too loose"), "\(what): \(error)")
            }
        }
        if getuid() == 0 {
            chown(key, 0, 10001)
            chmod(key, 0o440)
            #expect(throws: Never.self, "root-owned 0440") { try CurveKeyPair.read(secretFile: key) }
            chmod(key, 0o640)
            #expect(throws: Never.self, "root-owned 0640") { try CurveKeyPair.read(secretFile: key) }
            refused(0o460, owner: 0, "root-owned, group-writable")
            refused(0o444, owner: 0, "root-owned, readable by others")
            refused(0o440, owner: 10001, "group-readable, owned by another user")
        } else {
            refused(0o440, owner: getuid(), "group-readable, owned by this user")
        }
    }

    /// Z85 has `#` in its alphabet: an allowlist file must not read it as a comment.
    @Test func allowlistKeysMayContainHash() throws {
        var withHash: [CurveKeyPair] = []
        while withHash.count < 2 {
            let pair = try CurveKeyPair.generate()
            if pair.publicKey.contains("#") { withHash.append(pair) }
        }
        let text = "# workers of this run\npublic-key = \"\(withHash[0].publicKey)\"\n\(withHash[1].publicKey)  # bare, with a comment\n\n"
        let file = try folder.write("authorized.txt", Data(text.utf8))
        #expect(try CurveKeyPair.readAuthorized(file) == Set(withHash.map(\.publicKey)))
        let bad = try folder.write("bad.txt", Data("\(withHash[0].publicKey)\nnot-a-key\n".utf8))
        do { _ = try CurveKeyPair.readAuthorized(bad); Issue.record("accepted a bad line") } catch {
            #expect("\(error)".contains("line 2"))
        }
    }

    @Test func plaintextOnANetworkAddressNeedsInsecure() throws {
        let out = folder.path + "/refused"
        let c = try ChildProcess(executable("medmaml-coordinator"),
                                 ["train"] + Self.common + ["--bind", "tcp://0.0.0.0:\(freePort())", "--checkpoint-dir", out],
                                 name: "no-insecure", folder: folder.path)
        #expect(c.waitExit() != 0)
        #expect(c.stderr.contains("--insecure"))
        // Refused before it starts: no output folder, no run file.
        #expect(!FileManager.default.fileExists(atPath: out))
    }

    /// An allowlisted worker trains normally (same hash as plaintext); an unlisted key, a
    /// plaintext client and a client with the wrong server key are refused and change nothing.
    @Test func onlyAllowlistedWorkersJoin() throws {
        let server = try keygen("coordinator"), good = try keygen("good"), stranger = try keygen("stranger"), fake = try keygen("fake")
        try FileManager.default.createDirectory(atPath: folder.path + "/allowed", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: good + ".pub", toPath: folder.path + "/allowed/good.pub")

        let plainPort = freePort()
        let plain = try coordinator(port: plainPort, [], name: "plain")
        let plainWorker = try worker(port: plainPort, [], name: "plain-worker")
        #expect(plain.waitExit() == 0, "\(plain.stderr.suffix(2000))")
        let expected = try #require(plain.finalHash)
        _ = plainWorker

        let port = freePort()
        let c = try coordinator(port: port, ["--secret-key", server + ".key", "--authorized-keys", folder.path + "/allowed"], name: "secure")
        let unlisted = try worker(port: port, ["--secret-key", stranger + ".key", "--coordinator-key", server + ".pub"], name: "unlisted")
        let plaintext = try worker(port: port, [], name: "plaintext")
        let wrongServer = try worker(port: port, ["--secret-key", good + ".key", "--coordinator-key", fake + ".pub"], name: "wrong-server")
        #expect(unlisted.waitExit(timeout: 60) == 2, "\(unlisted.stderr)")
        #expect(unlisted.stderr.contains("does not accept this worker's key"))
        #expect(plaintext.waitExit(timeout: 60) == 2, "\(plaintext.stderr)")
        #expect(wrongServer.waitExit(timeout: 60) == 2, "\(wrongServer.stderr)")
        #expect(c.stderr.contains("refused a worker key that is not authorized"))
        #expect(!c.stderr.contains("worker ready"), "an unauthorized worker registered: \(c.stderr)")

        let allowed = try worker(port: port, ["--secret-key", good + ".key", "--coordinator-key", server + ".pub"], name: "allowed")
        #expect(c.waitExit() == 0, "\(c.stderr.suffix(2000))")
        #expect(c.finalHash == expected)
        _ = allowed
    }

    /// Through a recording proxy: parameter bytes are visible in a plaintext run (so the check
    /// can fail) and absent from an encrypted one.
    @Test func noParameterBytesInClear() throws {
        // The step-0 parameters are the run's initial values, known from the seed.
        var config = TrainingConfig()
        config.meta = MetaConfig(model: UNetConfig(height: 32, width: 32, depth: 2, baseChannels: 8, groups: 4).spec)
        let initial = try MetaLayout(config: config.meta).initialValues(seed: 5, innerLearningRate: 0.01)
        let probes = [0, 1000, 20000].map { Wire.floatBytes(Array(initial[$0..<($0 + 16)])) }

        func capture(secure: Bool) throws -> [UInt8] {
            let port = freePort()
            let proxy = try TCPProxy(upstreamPort: port)
            var coordinatorArgs: [String] = [], workerArgs: [String] = []
            if secure {
                let s = try keygen("server-\(port)"), w = try keygen("worker-\(port)")
                coordinatorArgs = ["--secret-key", s + ".key", "--authorized-keys", w + ".pub"]
                workerArgs = ["--secret-key", w + ".key", "--coordinator-key", s + ".pub"]
            }
            let c = try coordinator(port: port, coordinatorArgs, name: "capture-\(secure)")
            let w = try ChildProcess(executable("medmaml-worker"),
                                     ["--connect", "tcp://127.0.0.1:\(proxy.port)", "--threads", "2", "--idle-timeout", "30"] + workerArgs,
                                     name: "capture-worker-\(secure)", folder: folder.path)
            #expect(c.waitExit() == 0, "\(c.stderr.suffix(2000))")
            _ = w.waitExit(timeout: 20)
            proxy.stop()
            return proxy.bytes
        }
        let clear = try capture(secure: false)
        #expect(probes.allSatisfy { clear.contains(subsequence: $0) }, "plaintext capture lacks the parameters: the check is blind")
        let encrypted = try capture(secure: true)
        #expect(encrypted.count > 100_000, "too little traffic captured (\(encrypted.count) bytes)")
        #expect(!probes.contains { encrypted.contains(subsequence: $0) }, "parameter bytes travel in clear")
    }

    @Test func localWorkersAreSecureByDefault() throws {
        let c = try ChildProcess(executable("medmaml-coordinator"),
                                 ["train"] + Self.common + ["--local-workers", "1", "--threads", "2", "--checkpoint-dir", folder.path + "/local"],
                                 name: "local", folder: folder.path)
        #expect(c.waitExit() == 0, "\(c.stderr.suffix(2000))")
        #expect(c.stderr.contains("CURVE encryption on with throw-away keys"))
    }
}
