import Foundation

/// This process's memory, as the kernel counts it.
public enum ProcessMemory {
    /// Resident bytes (`/proc/self/statm`), or nil where that file does not exist.
    public static func residentBytes() -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return nil }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return nil }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    /// Returns freed heap memory to the kernel (glibc `malloc_trim`), so the resident size
    /// reflects what is in use.
    public static func trim() {
        // malloc.h is not part of the Glibc module: look the function up (RTLD_DEFAULT is nil).
        typealias Trim = @convention(c) (Int) -> Int32
        guard let symbol = dlsym(nil, "malloc_trim") else { return }
        _ = unsafeBitCast(symbol, to: Trim.self)(0)
    }
}
