import Foundation
import Testing
import TestSupport

/// The Slurm batch script on a real single-host Slurm cluster.
@Suite struct SlurmTests {
    @Test(.enabled(if: ClusterScripts.isRoot && ["slurmctld", "slurmd", "munged", "sbatch"].allSatisfy(ClusterScripts.has),
                   "needs root and slurm-wlm + munge (.ci/run installs them)"))
    func slurmJobOnASingleHostCluster() throws {
        let (status, log) = try ClusterScripts.script("slurm-local.sh")
        #expect(status == 0, "\(log.suffix(4000))")
        #expect(log.contains("slurm test passed"))
    }
}
