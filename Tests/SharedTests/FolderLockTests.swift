import Core
import Foundation
import Testing
import TestSupport

/// One process per output folder: a second claim is refused with a clear error, and the
/// claim ends with its holder.
@Suite struct FolderLockTests {
    @Test func aSecondClaimIsRefusedUntilTheFirstEnds() throws {
        let folder = TemporaryFolder()
        let path = folder.path + "/run"
        var first: FolderLock? = try FolderLock(folder: path, purpose: "a test")
        #expect(FileManager.default.fileExists(atPath: path + "/.medmaml.lock"))
        do {
            _ = try FolderLock(folder: path, purpose: "a test")
            Issue.record("a second claim on a held folder was granted")
        } catch let busy as FolderLock.Busy {
            #expect(busy.description.contains("another process is using \(path) for a test"))
        }
        #expect(first != nil)
        first = nil
        _ = try FolderLock(folder: path, purpose: "a test")
    }
}
