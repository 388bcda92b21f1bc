/// The values flags take when they are not given. `standard` is W1's model and task shape
/// (docs/W1.md), for `train`, `pretrain`, `study` and `evaluate`; `demo` is the demo's small
/// model and short study, so that `./demo.sh` runs in minutes; `map` is the regime map's small
/// model and many short studies. Each flag with several defaults names them in its help, and
/// this is the one place that holds them.
enum Preset {
    case standard, demo, map

    var imageSize: Int { self == .standard ? 64 : 32 }
    var baseChannels: Int { self == .standard ? 16 : 8 }
    var metaBatch: Int { self == .standard ? 8 : 4 }
    var budget: Double { [.standard: 600, .demo: 100, .map: 150][self]! }
    var validationPerTask: Int { [.standard: 6, .demo: 3, .map: 2][self]! }
    var testPerTask: Int { self == .map ? 3 : 10 }
    var shotsCurve: [Int] { [.standard: [1, 5, 10, 20], .demo: [1, 5], .map: [1, 3, 5, 10]][self]! }
    /// Budget fractions at which a study snapshots each candidate.
    var fractions: [Double] { self == .demo ? [0.5, 1] : [0.25, 0.5, 0.75, 1] }
}
