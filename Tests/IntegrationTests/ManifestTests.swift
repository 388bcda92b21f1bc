import Foundation
import Testing
import TestSupport

/// The Kubernetes manifests, checked against the executables' real flags and validated
/// against the Kubernetes schemas, and the alerting rules under promtool.
@Suite struct ManifestTests {
    @Test(.enabled(if: ClusterScripts.python(with: "yaml") != nil, "needs python3 with PyYAML"))
    func kubernetesManifestsResolveAndUseRealFlags() throws {
        let folder = TemporaryFolder()
        let p = try ChildProcess(ClusterScripts.python(with: "yaml")!, [ClusterScripts.repository + "/cluster/tests/check_k8s.py", ClusterScripts.repository, executablesFolder],
                                 name: "k8s", folder: folder.path)
        #expect(p.waitExit(timeout: 120) == 0, "\(p.stdout)\(p.stderr)")
        #expect(p.stdout.contains(" checks passed, 0 failed"))
    }

    /// Kubernetes versions whose schemas the manifests are validated against: the oldest
    /// still common in managed clusters, and the newest kubernetes-validate 1.37.0 ships.
    static let kubernetesVersions = ["1.30.0", "1.37.0"]

    @Test(.enabled(if: ClusterScripts.python(with: "yaml, kubernetes_validate") != nil,
                   "needs python3 with kubernetes-validate (pip install kubernetes-validate in a virtualenv and set MEDMAML_PYTHON to its python3; .ci/run does)"))
    func kubernetesManifestsMatchTheSchemas() throws {
        let folder = TemporaryFolder()
        let p = try ChildProcess(ClusterScripts.python(with: "yaml, kubernetes_validate")!,
                                 [ClusterScripts.repository + "/cluster/tests/check_k8s.py", ClusterScripts.repository, executablesFolder, "--schemas"] + Self.kubernetesVersions,
                                 name: "k8s-schemas", folder: folder.path)
        #expect(p.waitExit(timeout: 120) == 0, "\(p.stdout)\(p.stderr)")
        for version in Self.kubernetesVersions {
            #expect(p.stdout.contains("Job/medmaml-coordinator is valid against the Kubernetes \(version) schema (strict)"), "\(p.stdout.suffix(3000))")
        }
        #expect(p.stdout.contains(" checks passed, 0 failed"))
    }

    @Test(.enabled(if: ClusterScripts.has("promtool"), "needs promtool (apt-get install prometheus; .ci/run installs it)"))
    func alertRulesFireWhenTheyShould() throws {
        let (status, log) = try ClusterScripts.script("alerts.sh", timeout: 120)
        #expect(status == 0, "\(log.suffix(4000))")
        #expect(log.contains("alerts test passed"))
    }
}
