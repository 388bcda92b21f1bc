import COpenBLAS
import RealModule

/// A floating-point type the engine computes in: Float32 in production, Float64 for
/// derivative checks.
///
/// The only requirement beyond arithmetic is a matrix product. Every engine kernel is
/// generic over this protocol and is specialised for `Float` in release builds.
public protocol EngineScalar: BinaryFloatingPoint, Real, SIMDScalar, Sendable, Codable
where RawSignificand: FixedWidthInteger {
    /// `C = alpha * op(A) * op(B) + beta * C`, row-major, where `op(X)` is `X` or `X^T`.
    ///
    /// - Parameters: `m`, `n`: rows and columns of C; `k`: the shared dimension.
    ///   `lda`, `ldb`, `ldc`: row strides of A, B, C as stored.
    /// Thread-safety: runs single-threaded in the calling thread (see `BLAS.configure()`).
    static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
        alpha: Self, a: UnsafePointer<Self>, lda: Int,
        b: UnsafePointer<Self>, ldb: Int,
        beta: Self, c: UnsafeMutablePointer<Self>, ldc: Int)
}

extension Float: EngineScalar {
    @inline(__always)
    public static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
        alpha: Float, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        guard let profile = EngineProfile.active else {
            return BLAS.sgemm(
                transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
        }
        profile.gemm(m: m, n: n, k: k) {
            BLAS.sgemm(
                transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
        }
    }
}

extension Double: EngineScalar {
    @inline(__always)
    public static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
        alpha: Double, a: UnsafePointer<Double>, lda: Int,
        b: UnsafePointer<Double>, ldb: Int,
        beta: Double, c: UnsafeMutablePointer<Double>, ldc: Int
    ) {
        let call = {
            cblas_dgemm(
                CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
        }
        if let profile = EngineProfile.active { profile.gemm(m: m, n: n, k: k, call) } else { call() }
    }
}
