/// The kinds of structure a synthetic task segments.
public enum SyntheticStructure: String, CaseIterable, Sendable {
    /// A large smooth organ with texture (liver-like).
    case organ
    /// An elongated tube, sometimes branching (vessel-like).
    case vessel
    /// One to three small spots inside a host organ (lesion-like).
    case lesion
    /// A rim: bone-like cortex around marrow, or a cyst wall around fluid.
    case ring
    /// Two mirrored bean-shaped organs (kidney-like pair).
    case paired
}
