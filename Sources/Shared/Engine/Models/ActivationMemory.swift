import Foundation

/// How many inner steps' primal passes a meta-learner keeps for the exact second-order
/// meta-gradient: chosen once per process from `MEDMAML_KEEP_STEPS`.
///
/// 0 (the default) keeps none, so memory stays flat in the number of inner steps: the
/// backward sweep recomputes each step's forward and backward passes before its
/// Hessian-vector product. Each kept step costs one tape for the support set per compute
/// thread (`Network.tapeBytes(images:)`: 66 MB, 62.7 MiB, on W1) and saves that
/// recomputation: 2 of the product's 8 convolution passes, about a fifth of the step's
/// arithmetic with its gradient. The results are bitwise the same whatever the setting, so
/// workers with different settings may serve one run.
public enum ActivationMemory {
    /// The largest setting accepted (any value at or above the inner steps keeps them all).
    public static let maximumKeptSteps = 1000

    /// The process's setting; executables call `BLAS.checkEnvironment()` first, so a bad
    /// value is a clear error rather than this trap.
    public static let keptSteps: Int = {
        do { return try requestedKeptSteps() } catch { preconditionFailure("\(error)") }
    }()

    /// The number `MEDMAML_KEEP_STEPS` asks for; throws naming the variable for anything else.
    public static func requestedKeptSteps() throws(BLASError) -> Int {
        guard let text = ProcessInfo.processInfo.environment["MEDMAML_KEEP_STEPS"] else { return 0 }
        guard let steps = Int(text), (0...maximumKeptSteps).contains(steps) else {
            throw BLASError("MEDMAML_KEEP_STEPS=\(text.prefix(40)) is not a number of inner steps; use a whole number from 0 to \(maximumKeptSteps)")
        }
        return steps
    }
}
