import ArgumentParser
import Engine

/// The settings that decide a run's numbers (`NumericsSettings`): they travel with the run to
/// its checkpoints and workers, so no environment variable is needed to reproduce it.
public struct NumericsOptions: ParsableArguments {
    public init() {}
    @Option(help: "oneDNN's instruction set: avx2, avx512, avx512-bf16 or avx512-amx (default: this machine's best; a run records it, and every worker uses the same; the demo's: avx2, for its table on any x86-64 machine). Changes the bits.")
    public var cpuKernels: NumericsSettings.CPUKernels?
    @Option(help: "The library that computes matrix products: onednn (default) or openblas. Changes the bits.") public var matrixLibrary: BLAS.Backend?
    @Option(help: "How convolutions are computed: winograd (oneDNN's primitives with the Winograd algorithm wherever oneDNN has it: Float32 on AVX-512 kernels, 3x3 kernels with channel counts multiples of 16; about 1.5x faster training than primitives on BENCHMARKS.md's AMD EPYC, at Float32's accuracy), primitives (oneDNN's, direct) or im2col (unfolding). Default: winograd in Float32 on AVX-512 kernels with onednn, primitives otherwise, im2col with openblas; a run records the path. Changes the bits.")
    public var convolution: BLAS.ConvolutionPath?
    @Option(help: "The convolutions' operands: float32 (default) or bf16 (bfloat16 inputs, Float32 accumulation and results, Float32 parameters; on oneDNN's avx512-bf16 kernels only, so every worker needs AVX512-BF16). Faster only where the CPU's bfloat16 dot products outrun its Float32 ones (BENCHMARKS.md: faster on an AMD EPYC, slower on an Intel Xeon). Changes the bits.")
    public var precision: BLAS.Precision?
    @Option(help: "Inner steps whose passes are kept for the exact meta-gradient (default: 2 within 256 MB per thread; the demo's: all). Memory for speed: the same bits.")
    public var keepSteps: Int?

    public func validate() throws {
        if let keepSteps, !(0...ActivationMemory.maximumKeptSteps).contains(keepSteps) {
            throw ValidationError("--keep-steps takes 0...\(ActivationMemory.maximumKeptSteps)")
        }
    }

    /// The settings: the flags, then the command's `defaults` (a model's own, the demo's),
    /// then the environment variables older set-ups used (ONEDNN_MAX_CPU_ISA, MEDMAML_GEMM,
    /// MEDMAML_CONV, MEDMAML_PRECISION, MEDMAML_KEEP_STEPS), then the built-in defaults.
    public func settings(defaults: NumericsSettings? = nil) -> NumericsSettings {
        let environment = NumericsSettings.fromEnvironment
        return NumericsSettings(cpuKernels: cpuKernels ?? defaults?.cpuKernels ?? environment.cpuKernels,
                                matrixLibrary: matrixLibrary ?? defaults?.matrixLibrary ?? environment.matrixLibrary,
                                convolution: convolution ?? defaults?.convolution ?? environment.convolution,
                                precision: precision ?? defaults?.precision ?? environment.precision,
                                keptSteps: keepSteps ?? defaults?.keptSteps ?? environment.keptSteps)
    }
}

extension NumericsSettings.CPUKernels: ExpressibleByArgument {}
extension BLAS.Backend: ExpressibleByArgument {}
extension BLAS.ConvolutionPath: ExpressibleByArgument {}
extension BLAS.Precision: ExpressibleByArgument {}

/// Applies a run's numerics to this process (resolving the machine's own kernels when none is
/// named) before it computes anything; returns what was applied, for the run to record.
@discardableResult
public func applyNumerics(_ settings: NumericsSettings) throws -> NumericsSettings {
    let resolved = settings.resolved()
    do { try resolved.apply() } catch { throw ValidationError("\(error)") }
    return resolved
}
