/// The values flags take when they are not given. `standard` is W1's model and task shape
/// (docs/WORKLOADS.md), for `train`, `pretrain`, `study` and `evaluate`; `demo` is the demo's small
/// model and short study, so that `./demo.sh` runs in minutes; `map` is the regime map's small
/// model and many short studies. Each flag with several defaults names them in its help, and
/// this is the one place that holds them.
public enum Preset {
    case standard, demo, map

    public var imageSize: Int { self == .standard ? 64 : 32 }
    public var baseChannels: Int { self == .standard ? 16 : 8 }
    public var metaBatch: Int { self == .standard ? 8 : 4 }
    public var budget: Double { [.standard: 600, .demo: 100, .map: 150][self]! }
    public var validationPerTask: Int { [.standard: 6, .demo: 3, .map: 2][self]! }
    public var testPerTask: Int { self == .map ? 3 : 10 }
    public var shotsCurve: [Int] { [.standard: [1, 5, 10, 20], .demo: [1, 5], .map: [1, 3, 5, 10]][self]! }
    /// Budget fractions at which a study snapshots each candidate.
    public var fractions: [Double] { self == .demo ? [0.5, 1] : [0.25, 0.5, 0.75, 1] }
}
