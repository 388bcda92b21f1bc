import Foundation
import TestSupport

/// What the launcher tests share: the repository, what this machine has, and a runner for the
/// scripts in cluster/tests. Each launcher's suite skips its tests, with the reason in the test
/// report, where the machine lacks what they need (CI installs it: see .ci/run). The suites
/// run beside each other; the tests within one that share a resource (the network namespaces,
/// the container image) run one at a time.
enum ClusterScripts {
    static var repository: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    }

    static func has(_ command: String) -> Bool {
        ["/usr/bin/", "/usr/sbin/", "/bin/", "/sbin/"].contains { FileManager.default.isExecutableFile(atPath: $0 + command) }
    }

    static var isRoot: Bool { getuid() == 0 }

    /// Namespaces need root and a kernel that allows them; probed by creating one.
    static let namespacesAllowed: Bool = {
        guard isRoot, has("ip") else { return false }
        let name = "mmprobe\(getpid())"
        return run("/bin/sh", ["-c", "ip netns add \(name) && ip netns del \(name)"]) == 0
    }()

    /// A python3 that can import `modules`: $MEDMAML_PYTHON (.ci/run points it at a virtualenv
    /// with kubernetes-validate), else the system's.
    static func python(with modules: String) -> String? {
        let candidates = [ProcessInfo.processInfo.environment["MEDMAML_PYTHON"], "/usr/bin/python3"].compactMap { $0 }
        return candidates.first { run($0, ["-c", "import \(modules)"]) == 0 }
    }

    static var containersAllowed: Bool { isRoot && has("podman") && has("mmdebstrap") && has("runc") }

    static func run(_ path: String, _ args: [String], environment: [String: String] = [:]) -> Int32 {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = args
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        p.environment = env
        do { try p.run() } catch { return -1 }
        p.waitUntilExit()
        return p.terminationStatus
    }

    /// Runs a script from cluster/tests with the built executables; its log goes to a file.
    static func script(_ name: String, timeout: Double = 900) throws -> (status: Int32?, log: String) {
        let folder = TemporaryFolder()
        let p = try ChildProcess("/bin/bash", [repository + "/cluster/tests/" + name], name: name, folder: folder.path,
                                 environment: ["MEDMAML_BIN": executablesFolder])
        let status = p.waitExit(timeout: timeout)
        if status == nil { p.signal(SIGTERM); _ = p.waitExit(timeout: 30) }
        return (status, p.stderr + p.stdout)
    }
}
