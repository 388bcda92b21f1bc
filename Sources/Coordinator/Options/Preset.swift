/// The values flags take when they are not given. `standard` is W1's model and task shape
/// (docs/W1.md), for `train`, `pretrain`, `study` and `evaluate`; `demo` is the demo's small
/// model and short study, so that `./demo.sh` runs in minutes. Each flag with two defaults
/// names both in its help, and this is the one place that holds them.
enum Preset {
    case standard, demo

    var imageSize: Int { self == .demo ? 32 : 64 }
    var baseChannels: Int { self == .demo ? 8 : 16 }
    var metaBatch: Int { self == .demo ? 4 : 8 }
    var budget: Double { self == .demo ? 100 : 600 }
    var validationPerTask: Int { self == .demo ? 3 : 6 }
    var shotsCurve: [Int] { self == .demo ? [1, 5] : [1, 5, 10, 20] }
    /// Budget fractions at which a study snapshots each candidate.
    var fractions: [Double] { self == .demo ? [0.5, 1] : [0.25, 0.5, 0.75, 1] }
}
