import CDNNL
import COpenBLAS
import Foundation

/// Process-wide matrix-product set-up: which library computes Float32 products (and whether
/// convolutions use oneDNN's primitives), and how it is kept single-threaded.
///
/// MedMAML gets its parallelism from running independent tasks on separate threads, so
/// every product must run single-threaded inside the thread that makes it:
/// - OpenBLAS (Debian's default `libopenblas0-pthread`): `openblas_set_num_threads(1)` makes
///   each call run in the caller's thread; the build's locking makes concurrent callers
///   safe. (Debian's serial variant is built without locking and is not safe for
///   concurrent callers.) Setting `OPENBLAS_NUM_THREADS=1` in the environment also stops
///   the idle pool thread from being created.
/// - oneDNN (`dnnl_sgemm`, Debian's `libdnnl`, built on OpenMP): each calling thread's
///   OpenMP thread count is set to 1 before the call, so a call never forks a team.
///
/// Results of a single-threaded call depend only on the operands and on the CPU kernel the
/// library selected, never on the calling thread, which the determinism contract relies
/// on (`BLASThreadingTests` checks it). Kernel selection depends on the CPU: pin it
/// (`OPENBLAS_CORETYPE`, `ONEDNN_MAX_CPU_ISA`) for bitwise equality across different CPUs.
public enum BLAS {
    /// The library that computes Float32 matrix products.
    public enum Backend: String, Codable, Sendable, CaseIterable {
        /// oneDNN's JIT `dnnl_sgemm` (AVX-512 where the CPU has it).
        case onednn
        /// OpenBLAS `cblas_sgemm`.
        case openblas
    }

    /// Chosen once per process from `MEDMAML_GEMM` (`onednn` by default). Executables call
    /// `checkEnvironment()` first, so an unknown value is a clear error rather than this trap.
    public static let backend: Backend = {
        configure()
        do { return try requestedBackend() } catch { preconditionFailure("\(error)") }
    }()

    /// The backend `MEDMAML_GEMM` asks for; throws naming the variable for any other value.
    public static func requestedBackend() throws(BLASError) -> Backend {
        let name = ProcessInfo.processInfo.environment["MEDMAML_GEMM"] ?? Backend.onednn.rawValue
        guard let backend = Backend(rawValue: name) else {
            throw BLASError("MEDMAML_GEMM=\(name.prefix(40)) is not a matrix library; use one of \(Backend.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return backend
    }

    /// How Float32 convolutions with a kernel larger than 1 are computed.
    public enum ConvolutionPath: String, Codable, Sendable, CaseIterable {
        /// oneDNN's convolution primitives in their blocked layouts (`ConvolutionPrimitives`),
        /// direct algorithm.
        case primitives
        /// Unfolding (im2col) and one matrix product per image with the backend above.
        case im2col
        /// oneDNN's primitives with the Winograd F(4x4, 3x3) algorithm wherever oneDNN has a
        /// kernel for the layer (3x3 kernels whose channel counts are multiples of 16, on its
        /// AVX-512 Float32 kernels; the others run direct, as `primitives`): a quarter of the
        /// multiplications, the same Float32 accuracy as direct on W1 (BENCHMARKS.md).
        case winograd

        /// Whether convolutions run on oneDNN's primitives.
        public var usesPrimitives: Bool { self != .im2col }
    }

    /// Chosen once per process from `MEDMAML_CONV`; by default `defaultConvolution` for this
    /// process's backend, precision and oneDNN kernels. Float64 always unfolds, so the float64
    /// reference stays an independent implementation.
    public static let convolution: ConvolutionPath = {
        do { return try requestedConvolution() } catch { preconditionFailure("\(error)") }
    }()

    /// The convolution path `MEDMAML_CONV` asks for; throws naming the variable for any other value.
    public static func requestedConvolution() throws(BLASError) -> ConvolutionPath {
        guard let name = ProcessInfo.processInfo.environment["MEDMAML_CONV"] else {
            return defaultConvolution(backend: try requestedBackend(), precision: try requestedPrecision(),
                                      winogradKernels: oneDNNRunsAVX512)
        }
        guard let path = ConvolutionPath(rawValue: name) else {
            throw BLASError("MEDMAML_CONV=\(name.prefix(40)) is not a convolution path; use one of \(ConvolutionPath.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return path
    }

    /// The convolution path when none is asked for: Winograd where oneDNN has its kernels
    /// (Float32 on AVX-512 kernels), else its direct primitives; unfolding with OpenBLAS.
    public static func defaultConvolution(backend: Backend, precision: Precision, winogradKernels: Bool) -> ConvolutionPath {
        guard backend == .onednn else { return .im2col }
        return precision == .float32 && winogradKernels ? .winograd : .primitives
    }

    /// Whether oneDNN will run its AVX-512 kernels in this process: the CPU has them
    /// (`avx512f`, `avx512bw`, `avx512vl` and `avx512dq` in /proc/cpuinfo) and
    /// `ONEDNN_MAX_CPU_ISA` allows them. Decided without asking oneDNN, since asking fixes its
    /// instruction set, which `NumericsSettings.apply` may still have to set.
    static var oneDNNRunsAVX512: Bool {
        if let limit = ProcessInfo.processInfo.environment["ONEDNN_MAX_CPU_ISA"]?.uppercased(),
           !(limit.hasPrefix("AVX512_CORE") || limit == "ALL") {
            return false
        }
        return cpuHasAVX512
    }

    /// Whether the CPU has the AVX-512 subsets of oneDNN's `avx512_core` kernels (read once).
    private static let cpuHasAVX512: Bool = {
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let flags = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return false }
        let present = Set(flags.split(separator: " "))
        return ["avx512f", "avx512bw", "avx512vl", "avx512dq"].allSatisfy { present.contains(Substring($0)) }
    }()

    /// The number format of the convolutions' operands on the primitives path.
    public enum Precision: String, Codable, Sendable, CaseIterable {
        /// Float32 operands and results.
        case float32
        /// bfloat16 inputs (activations, weights, incoming gradients, rounded to nearest even
        /// as each call stages them) with Float32 accumulation and Float32 results, on
        /// oneDNN's AVX512-BF16 kernels; parameters, optimiser and every other layer stay
        /// Float32. Other bits; faster only on CPUs whose bfloat16 dot products outrun their
        /// Float32 FMAs (slower on the Xeon of BENCHMARKS.md, where they deliver half).
        case bf16
    }

    /// Chosen once per process from `MEDMAML_PRECISION` (`float32` by default).
    public static let precision: Precision = {
        do { return try requestedPrecision() } catch { preconditionFailure("\(error)") }
    }()

    /// The precision `MEDMAML_PRECISION` asks for; throws naming the variable for any other value.
    public static func requestedPrecision() throws(BLASError) -> Precision {
        let name = ProcessInfo.processInfo.environment["MEDMAML_PRECISION"] ?? Precision.float32.rawValue
        guard let precision = Precision(rawValue: name) else {
            throw BLASError("MEDMAML_PRECISION=\(name.prefix(40)) is not a precision; use one of \(Precision.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return precision
    }

    /// The precision of the networks built in this scope: the process's (`precision`) unless
    /// a scope sets another, so that tests compare both in one process.
    @TaskLocal public static var scopedPrecision: Precision?

    /// What a network built now uses.
    static var networkPrecision: Precision { scopedPrecision ?? precision }

    /// The convolution path of the networks built in this scope: the process's (`convolution`)
    /// unless a scope sets another, so that tests compare paths in one process.
    @TaskLocal public static var scopedConvolution: ConvolutionPath?

    /// What a network built now uses.
    static var networkConvolution: ConvolutionPath { scopedConvolution ?? convolution }

    /// Checks the environment variables that set up the engine (the numerics, and
    /// `ActivationMemory`), for executables to call before any work.
    public static func checkEnvironment() throws(BLASError) {
        _ = try requestedBackend()
        _ = try requestedConvolution()
        _ = try requestedPrecision()
        _ = try ActivationMemory.requestedKeptSteps()
    }

    private static let configured: Bool = {
        openblas_set_num_threads(1)
        return true
    }()

    /// Makes OpenBLAS single-threaded. Idempotent and cheap; every engine entry point calls it.
    public static func configure() {
        _ = configured
    }

    /// Float32 `C = alpha op(A) op(B) + beta C`, row-major, single-threaded in this thread.
    @inline(__always)
    static func sgemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
        alpha: Float, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        switch backend {
        case .onednn:
            // Per-thread OpenMP setting: a plain store once the thread has its ICV block.
            omp_set_num_threads(1)
            let status = dnnl_sgemm(
                transA ? 84 : 78, transB ? 84 : 78, Int64(m), Int64(n), Int64(k), alpha,
                a, Int64(lda), b, Int64(ldb), beta, c, Int64(ldc))
            // Only invalid arguments fail, which is a bug in the caller, never outside input.
            precondition(status == dnnl_success, "dnnl_sgemm failed with status \(status.rawValue) for \(m)x\(n)x\(k)")
        case .openblas:
            cblas_sgemm(
                CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
        }
    }

    /// A description of the numerics: backend, and the CPU kernel it uses.
    public static var kernelDescription: String {
        switch backend {
        case .onednn:
            let isa = ProcessInfo.processInfo.environment["ONEDNN_MAX_CPU_ISA"] ?? "auto"
            return "onednn \(dnnlVersion) (max ISA \(isa)), convolutions: \(convolution.rawValue)\(precision == .bf16 ? " in bf16" : "")"
        case .openblas:
            return "openblas \(coreName), convolutions: \(convolution.rawValue)"
        }
    }

    /// The oneDNN version string.
    public static var dnnlVersion: String {
        guard let v = dnnl_version() else { return "?" }
        return "\(v.pointee.major).\(v.pointee.minor).\(v.pointee.patch)"
    }

    /// The CPU kernel OpenBLAS selected (for example "Haswell").
    public static var coreName: String {
        configure()
        return String(cString: openblas_get_corename())
    }

    /// The number of threads one OpenBLAS call may use (1 after `configure()`).
    public static var threadsPerCall: Int {
        configure()
        return Int(openblas_get_num_threads())
    }
}

/// The numerics cannot be set up as the environment asks.
public struct BLASError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ description: String) { self.description = description }
}
