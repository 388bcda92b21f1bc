import Engine
import Foundation
import Logging

/// The lines each benchmark prints: a `#` header naming what was measured, then one
/// `name value` line per number, the last one the headline.
extension EngineBenchmark {
    public func report() throws -> String {
        let results = try run()
        let model = config == .w1 ? "W1 (unet-w1)" : config == UNetConfig(height: 128, width: 128) ? "W2 (unet-w1 at 128x128)"
            : "U-Net \(config.baseChannels) base channels"
        var lines = ["# \(model), \(batch) images \(config.height)x\(config.width), 1 thread, \(BLAS.kernelDescription)"]
        for r in results {
            lines.append(r.name.padding(toLength: 34, withPad: " ", startingAt: 0) + String(format: " %9.2f ms %8.1f GFLOP/s", r.milliseconds, r.gflops))
        }
        if results.count == 4 {
            let fb = results[1].milliseconds
            lines.append(String(format: "hvp_over_forward_backward %.3f", results[2].milliseconds / fb))
            lines.append(String(format: "hvp_replayed_over_forward_backward %.3f", results[3].milliseconds / fb))
        }
        return lines.joined(separator: "\n")
    }
}

extension ScaleBenchmark {
    /// One line per simulated worker count.
    public static func report(workers counts: [Int], steps: Int, secure: Bool, logger: Logger) throws -> String {
        var lines = ["# coordinator per-step cost, W1 parameters, one task per simulated worker, \(secure ? "CURVE" : "plaintext")"]
        for n in counts {
            let r = try ScaleBenchmark(workers: n, steps: steps, secure: secure, logger: logger).run()
            lines.append(String(format: "workers %4d  seconds_per_step %.4f  per_worker_ms %.2f  MB_per_step %.1f", n, r.secondsPerStep,
                                1000 * r.secondsPerStep / Double(n), r.megabytesPerStep))
        }
        return lines.joined(separator: "\n")
    }
}

extension NumericsBenchmark {
    /// One line per seed.
    public func report(seeds: [UInt64]) throws -> String {
        var lines = ["# \(BLAS.kernelDescription): \(BLAS.precision == .bf16 ? "bf16 convolutions" : "Float32") against Float64 (OpenBLAS dgemm), \(config.order.rawValue)-order meta-gradient, \(config.innerSteps) inner steps",
                     "seed  gradient_distance  conv_output_error  relu_flips  pool_flips"]
        for r in try run(seeds: seeds) {
            lines.append(String(format: "%4d  %17.3e  %17.3e  %10d  %10d", r.seed, r.gradientDistance, r.convolutionError, r.reluFlips, r.poolFlips))
        }
        return lines.joined(separator: "\n")
    }
}
