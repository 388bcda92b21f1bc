/// The study's choice rule, as pure functions: within a candidate, the best (snapshot,
/// setting) on meta-validation; within a family, the best candidate. Ties go to what comes
/// first (the earlier snapshot, setting and candidate), so a choice never depends on the
/// order of equal numbers' computation.
public enum StudyChoice {
    /// The index of the first largest value.
    public static func firstBest(_ values: [Double]) -> Int {
        values.indices.reduce(0) { values[$1] > values[$0] ? $1 : $0 }
    }

    /// The best cell of a candidate's meta-validation Dice (rows: snapshots, columns: settings).
    public static func best(_ dice: [[Double]]) -> (snapshot: Int, setting: Int) {
        let columns = dice.first?.count ?? 0
        guard columns > 0 else { return (0, 0) }
        let first = firstBest(dice.flatMap { $0 })
        return (first / columns, first % columns)
    }

    /// The best tuned candidate of each family, in plan order: a later candidate replaces the
    /// current choice only when strictly better. Candidates not yet tuned are left out.
    public static func bestPerFamily(plan: StudyPlan, tuned: [String: StudyState.Tuned]) -> [Family: StudyState.Choice] {
        var chosen: [Family: StudyState.Choice] = [:]
        for c in plan.candidates {
            guard let t = tuned[c.name] else { continue }
            let score = t.dice[t.bestSnapshot][t.bestSetting]
            if let current = chosen[c.family], current.validationDice >= score { continue }
            chosen[c.family] = .init(candidate: c.name, snapshot: t.bestSnapshot, setting: t.bestSetting, validationDice: score)
        }
        return chosen
    }
}
