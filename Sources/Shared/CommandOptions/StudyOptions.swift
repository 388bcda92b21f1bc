import ArgumentParser
import Study

/// The comparison protocol's knobs, shared by `study` and `demo` (the main comparison's K is
/// the tasks' `--shots`).
public struct StudyOptions: ParsableArguments {
    public init() {}
    @Option(help: "Training budget of every candidate, in core-seconds (default 600; the demo's 100, the map's 150).") public var budget: Double?
    @Option(help: "Shots of the Dice-against-K curve, comma-separated (default 1,5,10,20; the demo's 1,5, the map's 1,3,5,10).") public var shotsCurve: String?
    @Option(help: "Meta-validation instances per task (default 6; the demo's 3, the map's 2).") public var validationPerTask: Int?
    @Option(help: "Meta-test instances per task (default 10; the map's 3).") public var testPerTask: Int?
    @Option(help: "Read the per-step costs from another study's state.json instead of measuring them (same costs, same step counts, same results).")
    public var costsFrom: String?

    /// The protocol these flags give, with `preset`'s values for flags not given; the main
    /// comparison is at the tasks' `shots`.
    public func studyProtocol(_ preset: Preset, shots: Int) throws -> StudyProtocol {
        let budget = self.budget ?? preset.budget
        guard budget.isFinite, budget > 0, budget <= 1e7 else { throw ValidationError("--budget takes core-seconds in (0, 1e7]") }
        let curve = try shotsCurve.map { text in
            try text.split(separator: ",").map { part -> Int in
                guard let k = Int(part.trimmingCharacters(in: .whitespaces)) else { throw ValidationError("--shots-curve takes shot counts, for example 1,5,10") }
                return k
            }
        } ?? preset.shotsCurve
        guard !curve.isEmpty, curve.allSatisfy({ (1...64).contains($0) }), (1...64).contains(shots) else {
            throw ValidationError("--shots and --shots-curve take shot counts in 1...64")
        }
        let validation = validationPerTask ?? preset.validationPerTask, test = testPerTask ?? preset.testPerTask
        guard (1...1000).contains(validation), (1...1000).contains(test) else {
            throw ValidationError("--validation-per-task and --test-per-task take 1...1000")
        }
        return StudyProtocol(budget: budget, fractions: preset.fractions, shots: curve, mainShots: shots, validationPerTask: validation,
                             testPerTask: test, costs: try costsFrom.map { try StudyState.load($0).stepCost })
    }
}
