import COpenBLAS

/// Process-wide OpenBLAS set-up.
///
/// MedMAML gets its parallelism from running independent tasks on separate threads, so
/// every BLAS call must run single-threaded inside the thread that makes it. Debian's
/// default OpenBLAS (`libopenblas0-pthread`) is built with its own thread pool; after
/// `openblas_set_num_threads(1)` each call runs in the caller's thread, and the build's
/// locking makes concurrent calls from several application threads safe. Results of a
/// single-threaded call depend only on the inputs and on the CPU kernel OpenBLAS picked
/// at load time (`coreName`), never on which thread calls, which is what the determinism
/// contract needs. `BLASThreadingTests` checks this with two threads computing at once.
public enum BLAS {
    private static let configured: Bool = {
        openblas_set_num_threads(1)
        return true
    }()

    /// Makes OpenBLAS single-threaded. Idempotent and cheap; every engine entry point calls it.
    public static func configure() {
        _ = configured
    }

    /// The CPU kernel OpenBLAS selected (for example "Haswell"); part of the numerics fingerprint.
    public static var coreName: String {
        configure()
        return String(cString: openblas_get_corename())
    }

    /// The OpenBLAS build configuration string.
    public static var buildConfig: String {
        String(cString: openblas_get_config())
    }

    /// The number of threads one BLAS call may use (1 after `configure()`).
    public static var threadsPerCall: Int {
        Int(openblas_get_num_threads())
    }
}
