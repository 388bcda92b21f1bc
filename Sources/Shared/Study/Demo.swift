import Core
import Datasets
import Engine
import Foundation
import Logging
import MetaLearning
import Training

/// The main job (`medmaml-coordinator demo`): the regime map's central comparison, small. On
/// the task universe with fresh task types for every sample (unbounded N: no two training
/// tasks alike, the regime where meta-learning should beat transfer learning), the map's
/// meta-learning recipe, multi-class transfer and scratch are trained for the same budget,
/// every setting is chosen on the held-out meta-validation rules for each number of
/// adaptation steps, and the meta-test rules are met once at K = 1 and 5, with fast
/// adaptation (at most 5 steps) and with any number of steps. Then the same models, with the
/// same choices, meet the real-scan fold (one T1 MRI from Debian's insighttoolkit5-examples)
/// when it is installed. One training seed; the README's claims come from the full map.
public enum Demo {
    /// The demo's numerics: oneDNN's AVX2 kernels (its table the same on any x86-64 machine)
    /// and every inner step's passes kept (a few MB each for its small model).
    public static let numerics = NumericsSettings(cpuKernels: .avx2, keptSteps: 1000)

    /// The map's candidates the demo trains: one per family.
    public static let candidates = ["protonet+aug", "transfer-multiclass@0.001", "scratch"]

    /// Core-seconds per training step of the demo's model, measured once by a map's
    /// calibration on a reference machine (Intel Xeon, 2 cores). The demo converts its budget
    /// to step counts with these, so its table does not depend on the machine or its load.
    public static let referenceCosts: [String: Double] = [
        "joint-multiClass": 0.083, "joint-perTask": 0.061, "meta-second+head+proto+steps0+aug": 0.063,
        "meta-second+head+proto+aug": 0.060,
    ]

    /// Adaptation step counts the demo scores.
    public static let steps = [0, 1, 2, 5, 20, 100]

    /// The demo's map: one cell per entry of `typeCounts` (default: unbounded), seed `base.seed`.
    public static func settings(out: String, base: TrainingConfig, protocol p: StudyProtocol, typeCounts: [Int?] = [nil]) throws
        -> RegimeMap.Settings {
        var settings = RegimeMap.Settings(out: out, base: base, universe: .init(), plan: try StudyPlan.universe(finiteTypes: true)
            .selecting(candidates.joined(separator: ",")))
        settings.typeCounts = typeCounts
        settings.seeds = [base.seed]
        settings.shots = p.shots
        settings.mainShots = p.mainShots
        settings.steps = steps
        settings.fastSteps = 5
        settings.budget = p.budget
        settings.fractions = [1]
        settings.validationPerTask = p.validationPerTask
        settings.testPerTask = p.testPerTask
        let model = base.meta.model == UNetConfig(height: 32, width: 32, depth: 2, baseChannels: 8).spec && base.metaBatch == 4
        settings.costs = p.costs ?? (model ? referenceCosts : nil)
        return settings
    }

    /// The real-scan fold in `folder`, built there from insighttoolkit5-examples the first
    /// time; nil (with the reason) when the package is not installed.
    public static func realScanFold(in folder: String, size: Int, perTask: Int, logger: Logger) throws -> (RegimeMap.CrossDomain?, String?) {
        if !FileManager.default.fileExists(atPath: folder + "/dataset.json") {
            guard FileManager.default.fileExists(atPath: ITKFold.defaultSource + "/" + ITKFold.image) else {
                return (nil, "no real-scan fold: insighttoolkit5-examples is not installed (apt-get install insighttoolkit5-examples)")
            }
            _ = try ITKFold.write(to: folder)
        }
        var options = VolumeOptions()
        options.size = size
        options.separateVolumes = true
        let (_, source) = try DatasetSpec.open(folder, options: options, logger: logger)
        return (RegimeMap.CrossDomain(name: "the real-scan fold", source: source, tasks: Array(source.taskNames.indices),
                                      shots: [1, 5], perTask: perTask), nil)
    }
}
