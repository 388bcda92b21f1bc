import Foundation
import Testing
import TestSupport

/// The launchers in cluster/, tested as far as this machine allows: a real single-host Slurm,
/// network-namespace hosts with real faults, real sshd daemons for the SSH launcher, the
/// container image and what goes into it, the Kubernetes manifests validated against the
/// Kubernetes schemas and played as pods by podman, and the alerting rules. Each test is
/// skipped, with the reason in the test report, where the machine lacks what it needs (CI
/// installs it: see .ci/run).
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

    @Test(.enabled(if: containersAllowed, "needs root, podman, runc and mmdebstrap (.ci/run installs them)"))
    func containerImageRunsAClusterAndSurvivesAKilledWorker() throws {
        let (status, log) = try script("podman.sh")
        #expect(status == 0, "\(log.suffix(4000))")
        #expect(log.contains("podman cluster test passed"))
    }

    @Test(.enabled(if: containersAllowed, "needs root, podman, runc and mmdebstrap (.ci/run installs them)"))
    func imageAndBuildContextHoldNoKeysBuildFoldersOrOutputs() throws {
        let (status, log) = try script("image.sh")
        #expect(status == 0, "\(log.suffix(4000))")
        #expect(log.contains("image test passed"))
    }

    @Test(.enabled(if: containersAllowed && python(with: "yaml") != nil,
                   "needs root, podman, runc, mmdebstrap and python3-yaml (.ci/run installs them)"))
    func kubernetesJobsPlayedAsPodsEndAtTheInProcessHash() throws {
        let (status, log) = try script("k8s-play.sh")
        #expect(status == 0, "\(log.suffix(4000))")
        #expect(log.contains("k8s play test passed"))
    }

    @Test(.enabled(if: python(with: "yaml") != nil, "needs python3 with PyYAML"))
    func kubernetesManifestsResolveAndUseRealFlags() throws {
        let folder = TemporaryFolder()
        let p = try ChildProcess(Self.python(with: "yaml")!, [Self.repository + "/cluster/tests/check_k8s.py", Self.repository, executablesFolder],
                                 name: "k8s", folder: folder.path)
        #expect(p.waitExit(timeout: 120) == 0, "\(p.stdout)\(p.stderr)")
        #expect(p.stdout.contains(" checks passed, 0 failed"))
    }

    /// Kubernetes versions whose schemas the manifests are validated against: the oldest
    /// still common in managed clusters, and the newest kubernetes-validate 1.37.0 ships.
    static let kubernetesVersions = ["1.30.0", "1.37.0"]

    @Test(.enabled(if: python(with: "yaml, kubernetes_validate") != nil,
                   "needs python3 with kubernetes-validate (pip install kubernetes-validate in a virtualenv and set MEDMAML_PYTHON to its python3; .ci/run does)"))
    func kubernetesManifestsMatchTheSchemas() throws {
        let folder = TemporaryFolder()
        let p = try ChildProcess(Self.python(with: "yaml, kubernetes_validate")!,
                                 [Self.repository + "/cluster/tests/check_k8s.py", Self.repository, executablesFolder, "--schemas"] + Self.kubernetesVersions,
                                 name: "k8s-schemas", folder: folder.path)
        #expect(p.waitExit(timeout: 120) == 0, "\(p.stdout)\(p.stderr)")
        for version in Self.kubernetesVersions {
            #expect(p.stdout.contains("Job/medmaml-coordinator is valid against the Kubernetes \(version) schema (strict)"), "\(p.stdout.suffix(3000))")
        }
        #expect(p.stdout.contains(" checks passed, 0 failed"))
    }

    @Test(.enabled(if: has("promtool"), "needs promtool (apt-get install prometheus; .ci/run installs it)"))
    func alertRulesFireWhenTheyShould() throws {
        let (status, log) = try script("alerts.sh", timeout: 120)
        #expect(status == 0, "\(log.suffix(4000))")
        #expect(log.contains("alerts test passed"))
    }
}
