/// The methods a study compares: every candidate competes in one family, each family's best
/// candidate on meta-validation meets the meta-test, and MAML's family is compared with each
/// other one on the same instances.
public enum Family: String, Codable, CodingKeyRepresentable, Sendable, CaseIterable, Comparable {
    /// Meta-learning recipes (MAML and its variants).
    case maml
    /// Joint training with a head per meta-train task, then a new head fitted on the shots.
    case transferHeads = "transfer-heads"
    /// Joint training with one shared head, then fine-tuning on the shots.
    case transfer
    /// Multi-class training on full label maps (a head per structure class), then a new head
    /// fitted on the shots: the task universe's transfer baseline.
    case transferMultiClass = "transfer-multiclass"
    /// The random initialisation fine-tuned on the shots.
    case scratch
    /// Pretraining on unlabelled images, then meta-learning (the pretraining study).
    case pretrainedMAML = "pretrained-maml"

    /// The families of the main comparison, in report order.
    public static let main: [Family] = [.maml, .transferHeads, .transfer, .scratch]

    /// Report order: declaration order.
    public static func < (a: Family, b: Family) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }
}
