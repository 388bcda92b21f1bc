import Foundation
import Testing
import TestSupport

/// The launchers in cluster/, tested as far as this machine allows: a real single-host Slurm,
/// network-namespace hosts with real faults, real sshd daemons for the SSH launcher, and the
/// Kubernetes manifests checked without a cluster. Each test is skipped, with the reason in
/// the test report, where the machine lacks what it needs (CI installs it: see .ci/run).
@Suite(.serialized) struct ClusterTests {
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
    func script(_ name: String, timeout: Double = 900) throws -> (status: Int32?, log: String) {
        let folder = TemporaryFolder()
        let p = try ChildProcess("/bin/bash", [Self.repository + "/cluster/tests/" + name], name: name, folder: folder.path,
                                 environment: ["MEDMAML_BIN": executablesFolder])
        let status = p.waitExit(timeout: timeout)
        if status == nil { p.signal(SIGTERM); _ = p.waitExit(timeout: 30) }
        return (status, p.stderr + p.stdout)
    }

    @Test(.enabled(if: isRoot && has("slurmctld") && has("slurmd") && has("munged") && has("sbatch"),
                   "needs root and slurm-wlm + munge (.ci/run installs them)"))
    func slurmJobOnASingleHostCluster() throws {
        let (status, log) = try script("slurm-local.sh")
        #expect(status == 0, "\(log.suffix(4000))")
        #expect(log.contains("slurm test passed"))
    }

    @Test(.enabled(if: namespacesAllowed && has("tc"), "needs root and network namespaces (ip netns) on this machine"))
    func multiHostLatencyLossAndPartition() throws {
        let (status, log) = try script("netns.sh")
        #expect(status == 0, "\(log.suffix(4000))")
        #expect(log.contains("netns tests passed"))
    }

    @Test(.enabled(if: namespacesAllowed && has("sshd") && has("ssh"), "needs root, network namespaces and openssh-server"))
    func sshLauncherStartsAndStopsRemoteWorkers() throws {
        let (status, log) = try script("ssh.sh")
        #expect(status == 0, "\(log.suffix(4000))")
        #expect(log.contains("ssh tests passed"))
    }

    @Test(.enabled(if: isRoot && has("podman") && has("mmdebstrap"), "needs root, podman, runc and mmdebstrap (.ci/run installs them)"))
    func containerImageRunsAClusterAndSurvivesAKilledWorker() throws {
        let (status, log) = try script("podman.sh")
        #expect(status == 0, "\(log.suffix(4000))")
        #expect(log.contains("podman cluster test passed"))
    }

    @Test(.enabled(if: Self.run("/usr/bin/env", ["python3", "-c", "import yaml"]) == 0, "needs python3 with PyYAML"))
    func kubernetesManifestsResolveAndUseRealFlags() throws {
        let folder = TemporaryFolder()
        let p = try ChildProcess("/usr/bin/env", ["python3", Self.repository + "/cluster/tests/check_k8s.py", Self.repository, executablesFolder],
                                 name: "k8s", folder: folder.path)
        #expect(p.waitExit(timeout: 120) == 0, "\(p.stdout)\(p.stderr)")
        #expect(p.stdout.contains("0 failed"))
    }
}
