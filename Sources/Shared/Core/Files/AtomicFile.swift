import Foundation

/// Crash-safe file replacement: write a temporary file beside the target, fsync it, rename
/// it over the target, then fsync the folder so the rename itself is durable. A reader
/// sees either the old file or the new one, never a torn one.
public enum AtomicFile {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    public static func write(_ data: Data, to path: String) throws(Failure) {
        var failure: Failure?
        data.withUnsafeBytes { raw in
            do throws(Failure) { try write([raw], to: path) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    /// Writes the concatenation of `parts` (read in place, not copied together), atomically.
    public static func write(_ parts: [UnsafeRawBufferPointer], to path: String) throws(Failure) {
        let url = URL(fileURLWithPath: path)
        let folder = url.deletingLastPathComponent().path
        let temporary = folder + "/." + url.lastPathComponent + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw Failure(description: "cannot create \(temporary): \(errnoText())") }
        var ok = parts.allSatisfy { raw -> Bool in
            var written = 0
            while written < raw.count {
                let n = Foundation.write(fd, raw.baseAddress! + written, raw.count - written)
                if n < 0 { if errno == EINTR { continue }; return false }
                written += n
            }
            return true
        }
        ok = ok && fsync(fd) == 0
        let failure = errnoText()
        close(fd)
        guard ok else {
            unlink(temporary)
            throw Failure(description: "cannot write \(temporary): \(failure)")
        }
        guard rename(temporary, path) == 0 else {
            let why = errnoText()
            unlink(temporary)
            throw Failure(description: "cannot rename onto \(path): \(why)")
        }
        let dir = open(folder.isEmpty ? "." : folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dir >= 0 {
            fsync(dir)
            close(dir)
        }
    }

    private static func errnoText() -> String { String(cString: strerror(errno)) }
}
