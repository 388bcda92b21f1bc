import Foundation
import Testing
import TestSupport

/// Hosts made of network namespaces (the same ones for each test, so one test at a time): a
/// coordinator and workers with real latency, loss and a partition, and real sshd daemons
/// for the SSH launcher.
@Suite(.serialized) struct NetworkNamespaceTests {
    @Test(.enabled(if: ClusterScripts.namespacesAllowed && ClusterScripts.has("tc"), "needs root and network namespaces (ip netns) on this machine"))
    func multiHostLatencyLossAndPartition() throws {
        let (status, log) = try ClusterScripts.script("netns.sh")
        #expect(status == 0, "\(log.suffix(4000))")
        #expect(log.contains("netns tests passed"))
    }

    @Test(.enabled(if: ClusterScripts.namespacesAllowed && ClusterScripts.has("sshd") && ClusterScripts.has("ssh"), "needs root, network namespaces and openssh-server"))
    func sshLauncherStartsAndStopsRemoteWorkers() throws {
        let (status, log) = try ClusterScripts.script("ssh.sh")
        #expect(status == 0, "\(log.suffix(4000))")
        #expect(log.contains("ssh tests passed"))
    }
}
