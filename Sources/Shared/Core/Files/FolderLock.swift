import Foundation

/// An exclusive claim on a folder for one process: `flock` on a `.medmaml.lock` file inside
/// it. A second run, study or demo writing into the same folder gets a clear error instead
/// of the two deleting and overwriting each other's files. The kernel drops the lock when
/// the process exits, however it exits, so a crash never leaves a stale claim.
public final class FolderLock: @unchecked Sendable {
    public struct Busy: Error, CustomStringConvertible {
        public var description: String
    }

    public let folder: String
    private let fd: Int32

    /// Claims `folder` (created if missing) for `purpose` (said in the error).
    public init(folder: String, purpose: String) throws {
        self.folder = folder
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let path = folder + "/.medmaml.lock"
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw Busy(description: "cannot open \(path): \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let reason = errno == EWOULDBLOCK ? "another process is using \(folder) for \(purpose); wait for it or use another folder"
                                              : "cannot lock \(path): \(String(cString: strerror(errno)))"
            close(fd)
            throw Busy(description: reason)
        }
    }

    deinit { close(fd) }
}
