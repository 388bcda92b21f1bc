import Foundation
import Testing
import TestSupport

/// The container image (built once, then shared, so one test at a time): what goes into it, a
/// cluster of its containers, and the Kubernetes Jobs played as pods by podman.
@Suite(.serialized) struct ContainerTests {
    @Test(.enabled(if: ClusterScripts.containersAllowed, "needs root, podman, runc and mmdebstrap (.ci/run installs them)"))
    func containerImageRunsAClusterAndSurvivesAKilledWorker() throws {
        let (status, log) = try ClusterScripts.script("podman.sh")
        #expect(status == 0, "\(log.suffix(4000))")
        #expect(log.contains("podman cluster test passed"))
    }

    @Test(.enabled(if: ClusterScripts.containersAllowed, "needs root, podman, runc and mmdebstrap (.ci/run installs them)"))
    func imageAndBuildContextHoldNoKeysBuildFoldersOrOutputs() throws {
        let (status, log) = try ClusterScripts.script("image.sh")
        #expect(status == 0, "\(log.suffix(4000))")
        #expect(log.contains("image test passed"))
    }

    @Test(.enabled(if: ClusterScripts.containersAllowed && ClusterScripts.python(with: "yaml") != nil,
                   "needs root, podman, runc, mmdebstrap and python3-yaml (.ci/run installs them)"))
    func kubernetesJobsPlayedAsPodsEndAtTheInProcessHash() throws {
        let (status, log) = try ClusterScripts.script("k8s-play.sh")
        #expect(status == 0, "\(log.suffix(4000))")
        #expect(log.contains("k8s play test passed"))
    }
}
