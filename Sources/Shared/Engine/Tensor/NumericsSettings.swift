import CDNNL
import Foundation

/// The settings that decide a run's numbers, and the one that only decides its memory: they
/// travel with the run (its checkpoints, its run file, the run specification workers receive)
/// and every process of the run applies them before it computes anything, so no environment
/// variable is needed to reproduce a run and every worker computes the coordinator's bits.
///
/// - `cpuKernels`: the most advanced instruction set oneDNN may use. Kernels of different sets
///   sum in different orders, so they change the bits. A run started without one takes the
///   coordinator's own (resolved to a named set), which a worker whose CPU lacks it cannot
///   match: it is refused with the reason.
/// - `matrixLibrary`, `convolution`: which library computes matrix products, and whether
///   convolutions run on oneDNN's primitives (direct, or Winograd where oneDNN has it) or
///   unfold (change the bits). Winograd runs in Float32 on AVX-512 kernels only.
/// - `precision`: the convolutions' operands in Float32 or bfloat16 (`BLAS.Precision`;
///   changes the bits). bf16 runs on exactly oneDNN's AVX512-BF16 kernels, never on AMX or
///   on another set's emulation, so every worker of a bf16 run computes the same bits.
/// - `keptSteps`: inner steps whose passes are kept for the exact meta-gradient
///   (`ActivationMemory`; memory for speed, the same bits).
///
/// The engine reads its settings once per process; `apply` sets them before that and refuses
/// settings other than those a process already computes with.
public struct NumericsSettings: Codable, Hashable, Sendable, CustomStringConvertible {
    /// oneDNN's instruction-set limits MedMAML names (oneDNN's `ONEDNN_MAX_CPU_ISA` values).
    public enum CPUKernels: String, Codable, Sendable, CaseIterable {
        case avx2
        case avx512
        case avx512BF16 = "avx512-bf16"
        case avx512AMX = "avx512-amx"

        var isa: dnnl_cpu_isa_t {
            switch self {
            case .avx2: dnnl_cpu_isa_avx2
            case .avx512: dnnl_cpu_isa_avx512_core
            case .avx512BF16: dnnl_cpu_isa_avx512_core_bf16
            case .avx512AMX: dnnl_cpu_isa_avx512_core_amx
            }
        }

        var environmentValue: String {
            switch self {
            case .avx2: "AVX2"
            case .avx512: "AVX512_CORE"
            case .avx512BF16: "AVX512_CORE_BF16"
            case .avx512AMX: "AVX512_CORE_AMX"
            }
        }

        /// The named set of an effective oneDNN ISA (the largest named one it includes).
        static func named(_ isa: dnnl_cpu_isa_t) -> CPUKernels? {
            let value = isa.rawValue
            return allCases.reversed().first { value & $0.isa.rawValue == $0.isa.rawValue }
        }
    }

    /// nil: the machine's own (resolved by `resolved()` before a run starts).
    public var cpuKernels: CPUKernels?
    public var matrixLibrary: BLAS.Backend = .onednn
    /// nil: the default for the other settings (`BLAS.defaultConvolution`: Winograd on AVX-512
    /// kernels in Float32, else oneDNN's direct primitives, unfolding with OpenBLAS), named by
    /// `resolved()` and in every record of the settings.
    public var convolution: BLAS.ConvolutionPath?
    public var precision: BLAS.Precision = .float32
    /// nil: the default rule.
    public var keptSteps: Int?

    public init(cpuKernels: CPUKernels? = nil, matrixLibrary: BLAS.Backend = .onednn, convolution: BLAS.ConvolutionPath? = nil,
                precision: BLAS.Precision = .float32, keptSteps: Int? = nil) {
        self.cpuKernels = cpuKernels
        self.matrixLibrary = matrixLibrary
        self.convolution = convolution
        self.precision = precision
        self.keptSteps = keptSteps
    }

    private enum CodingKeys: String, CodingKey { case cpuKernels, matrixLibrary, convolution, precision, keptSteps }

    /// Settings saved before the precision existed read as Float32, which they computed with;
    /// settings saved without a convolution path as `recorded` says.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        cpuKernels = try c.decodeIfPresent(CPUKernels.self, forKey: .cpuKernels)
        matrixLibrary = try c.decode(BLAS.Backend.self, forKey: .matrixLibrary)
        convolution = try c.decodeIfPresent(BLAS.ConvolutionPath.self, forKey: .convolution)
        precision = try c.decodeIfPresent(BLAS.Precision.self, forKey: .precision) ?? .float32
        keptSteps = try c.decodeIfPresent(Int.self, forKey: .keptSteps)
        self = recorded
    }

    /// A record names the convolution path its settings compute with, so that a later default
    /// cannot change what it means.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encodeIfPresent(cpuKernels, forKey: .cpuKernels)
        try c.encode(matrixLibrary, forKey: .matrixLibrary)
        try c.encode(effectiveConvolution, forKey: .convolution)
        try c.encode(precision, forKey: .precision)
        try c.encodeIfPresent(keptSteps, forKey: .keptSteps)
    }

    /// These settings as a record that names no convolution path means them: such records
    /// (checkpoints, run files, run specifications from coordinators) come from before
    /// Winograd was a default, when the path was the library's own: oneDNN's direct
    /// primitives, or unfolding with OpenBLAS.
    public var recorded: NumericsSettings {
        var s = self
        if s.convolution == nil { s.convolution = matrixLibrary == .onednn ? .primitives : .im2col }
        return s
    }

    /// The convolution path these settings compute with.
    public var effectiveConvolution: BLAS.ConvolutionPath {
        // The machine's kernels from its flags: asking oneDNN would fix its instruction set.
        convolution ?? BLAS.defaultConvolution(backend: matrixLibrary, precision: precision,
                                               winogradKernels: cpuKernels.map { $0 != .avx2 } ?? BLAS.oneDNNRunsAVX512)
    }

    public var description: String {
        "cpu kernels \(cpuKernels?.rawValue ?? "native"), \(matrixLibrary.rawValue), convolutions \(effectiveConvolution.rawValue)\(precision == .bf16 ? " in bf16" : ""), kept steps \(keptSteps.map(String.init) ?? "default")"
    }

    /// The settings a process with no flags computes with (what runs saved before settings
    /// travelled used, and what the environment variables of old set-ups ask for).
    public static var fromEnvironment: NumericsSettings {
        let env = ProcessInfo.processInfo.environment
        var s = NumericsSettings()
        if let isa = env["ONEDNN_MAX_CPU_ISA"] { s.cpuKernels = CPUKernels.allCases.first { $0.environmentValue == isa.uppercased() } }
        s.matrixLibrary = env["MEDMAML_GEMM"].flatMap(BLAS.Backend.init(rawValue:)) ?? .onednn
        s.convolution = env["MEDMAML_CONV"].flatMap(BLAS.ConvolutionPath.init(rawValue:))
        s.precision = env["MEDMAML_PRECISION"].flatMap(BLAS.Precision.init(rawValue:)) ?? .float32
        s.keptSteps = env["MEDMAML_KEEP_STEPS"].flatMap(Int.init)
        return s
    }

    /// The variables these settings set, for a process started with them.
    public var environmentVariables: [String: String] { environment.compactMapValues { $0 } }
    /// The variables these settings leave unset.
    public var unsetVariables: [String] { environment.filter { $0.value == nil }.map(\.key) }

    /// The variables the engine reads, as these settings set them.
    var environment: [String: String?] {
        ["ONEDNN_MAX_CPU_ISA": cpuKernels?.environmentValue, "MEDMAML_GEMM": matrixLibrary.rawValue,
         "MEDMAML_CONV": convolution?.rawValue, "MEDMAML_PRECISION": precision == .float32 ? nil : precision.rawValue,
         "MEDMAML_KEEP_STEPS": keptSteps.map(String.init)]
    }

    /// The process's settings, once applied.
    nonisolated(unsafe) private static var appliedSettings: NumericsSettings?
    private static let lock = NSLock()

    /// The settings this process computes with, if applied.
    public static var applied: NumericsSettings? { lock.withLock { appliedSettings } }

    /// Why settings cannot be applied.
    public enum Failure: Error, Equatable, CustomStringConvertible {
        /// The process already computes with other settings (a worker restarts itself).
        case alreadyApplied(NumericsSettings)
        /// This machine cannot run the kernels asked for.
        case unsupported(String)

        public var description: String {
            switch self {
            case .alreadyApplied(let s): "this process already computes with other numerics (\(s))"
            case .unsupported(let why): why
            }
        }
    }

    /// Refuses combinations no machine computes: bf16 precision needs oneDNN's primitives and
    /// exactly the avx512-bf16 kernels (named, or left unset to be resolved to them); Winograd
    /// convolutions need Float32 and AVX-512 kernels.
    public func check() throws(Failure) {
        if effectiveConvolution == .winograd {
            guard precision == .float32 else {
                throw .unsupported("Winograd convolutions run in Float32 (oneDNN has no bfloat16 Winograd kernels); use --convolution primitives with --precision bf16")
            }
            guard cpuKernels != .avx2 else {
                throw .unsupported("Winograd convolutions run on oneDNN's AVX-512 kernels; use --convolution primitives with --cpu-kernels avx2")
            }
        }
        guard precision == .bf16 else { return }
        guard effectiveConvolution == .primitives else {
            throw .unsupported("bf16 precision runs on oneDNN's convolution primitives, not with --convolution im2col or --matrix-library openblas")
        }
        guard cpuKernels == nil || cpuKernels == .avx512BF16 else {
            throw .unsupported("bf16 precision runs on oneDNN's avx512-bf16 kernels only (other sets sum in other orders, so workers would differ); use --cpu-kernels avx512-bf16 or leave it unset")
        }
    }

    /// Makes this process compute with these settings: sets what the engine reads before it
    /// first reads it. Applying the same settings again does nothing; other settings throw.
    public func apply() throws(Failure) {
        Self.lock.lock()
        defer { Self.lock.unlock() }
        try check()
        if precision == .bf16 && cpuKernels == nil { throw .unsupported("bf16 settings are applied with their kernels named (resolved())") }
        if let current = Self.appliedSettings {
            guard current == self else { throw .alreadyApplied(current) }
            return
        }
        if effectiveConvolution == .winograd, cpuKernels == nil, CPUKernels.named(dnnl_get_effective_cpu_isa()).map({ $0 == .avx2 }) ?? true {
            throw .unsupported("Winograd convolutions need a CPU with AVX-512 (oneDNN has no Winograd kernels for smaller sets); use --convolution primitives on this machine")
        }
        for (name, value) in environment {
            if let value { setenv(name, value, 1) } else { unsetenv(name) }
        }
        if let kernels = cpuKernels {
            // Before oneDNN creates anything; a later call cannot change what it chose.
            _ = dnnl_set_max_cpu_isa(kernels.isa)
            let effective = CPUKernels.named(dnnl_get_effective_cpu_isa())
            if effective != kernels {
                let order = CPUKernels.allCases
                if let effective, order.firstIndex(of: effective)! > order.firstIndex(of: kernels)! {
                    var current = self
                    current.cpuKernels = effective
                    throw .alreadyApplied(current)
                }
                if effectiveConvolution == .winograd && effective.map({ $0 == .avx2 }) ?? true {
                    throw .unsupported("Winograd convolutions need a CPU with AVX-512 (this one offers oneDNN's \(effective?.rawValue ?? "less than avx2") kernels); use --convolution primitives on this machine")
                }
                if precision == .bf16 {
                    throw .unsupported("bf16 precision needs a CPU with AVX512-BF16 (this one offers oneDNN's \(effective?.rawValue ?? "less than avx2") kernels); use --precision float32 on this machine")
                }
                throw .unsupported("this CPU cannot run oneDNN's \(kernels.rawValue) kernels (it offers \(effective?.rawValue ?? "less than avx2")); start the run with --cpu-kernels set to what every machine has")
            }
        }
        Self.appliedSettings = self
    }

    /// These settings with the machine's own CPU kernels named when none was asked for (for
    /// bf16 precision, its one set), and the default convolution path for them: what a run
    /// records, so every worker computes with the coordinator's kernels and path.
    public func resolved() -> NumericsSettings {
        var s = self
        if s.cpuKernels == nil { s.cpuKernels = precision == .bf16 ? .avx512BF16 : CPUKernels.named(dnnl_get_effective_cpu_isa()) }
        s.convolution = s.effectiveConvolution
        return s
    }
}
