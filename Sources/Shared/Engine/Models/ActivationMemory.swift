import Foundation

/// How many inner steps' primal passes a meta-learner keeps for the exact second-order
/// meta-gradient: chosen once per process from the numerics settings (`--keep-steps`, which
/// `NumericsSettings.apply` hands to the engine as `MEDMAML_KEEP_STEPS` before it first reads
/// it), or by the default rule.
///
/// A kept step costs one tape for the support set per compute thread
/// (`Network.tapeBytes(images:)`: 51 MB, 49.1 MiB, on W1) and saves that step's
/// recomputation before its Hessian-vector product: 2 of the product's 8 convolution passes,
/// about a fifth of the step's arithmetic with its gradient. Memory stays bounded whatever
/// the number of inner steps: the steps after the kept ones recompute.
///
/// - Unset (the default): the first 2 steps, or fewer if their tapes would need more than
///   256 MB per compute thread (W1: 2 steps, 103 MB; memory from 1 to 20 inner steps grows
///   1.27x, `bench/memory.sh`).
/// - `--keep-steps N`: exactly N (0 keeps none: the flattest memory, 1.05x).
///
/// The results are bitwise the same whatever the setting, so workers with different
/// settings may serve one run.
public enum ActivationMemory {
    /// The largest setting accepted (any value at or above the inner steps keeps them all).
    public static let maximumKeptSteps = 1000
    /// The default rule: this many steps at most, within this many bytes of tapes per thread.
    public static let defaultKeptSteps = 2
    public static let defaultTapeBudget = 256 << 20

    /// The process's explicit setting (nil: the default rule); executables call
    /// `BLAS.checkEnvironment()` first, so a bad value is a clear error rather than this trap.
    public static let requested: Int? = {
        do { return try requestedKeptSteps() } catch { preconditionFailure("\(error)") }
    }()

    /// The number `MEDMAML_KEEP_STEPS` asks for, nil if unset; throws naming the variable
    /// for anything else.
    public static func requestedKeptSteps() throws(BLASError) -> Int? {
        guard let text = ProcessInfo.processInfo.environment["MEDMAML_KEEP_STEPS"] else { return nil }
        guard let steps = Int(text), (0...maximumKeptSteps).contains(steps) else {
            throw BLASError("MEDMAML_KEEP_STEPS=\(text.prefix(40)) is not a number of inner steps; use a whole number from 0 to \(maximumKeptSteps)")
        }
        return steps
    }

    /// The steps to keep of `innerSteps`, each tape `tapeBytes`: `requested` if given, else
    /// the default rule.
    public static func keptSteps(requested: Int?, tapeBytes: Int, innerSteps: Int) -> Int {
        let steps = requested ?? min(defaultKeptSteps, defaultTapeBudget / max(tapeBytes, 1))
        return max(0, min(steps, innerSteps))
    }

    /// The process's setting for logs: the number, or the default rule.
    public static var description: String {
        requested.map(String.init) ?? "default (\(defaultKeptSteps) within \(defaultTapeBudget >> 20) MB)"
    }
}
