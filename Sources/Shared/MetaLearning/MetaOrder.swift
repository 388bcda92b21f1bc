/// How a meta-gradient is computed.
public enum MetaOrder: String, Codable, Sendable, CaseIterable {
    /// Exact MAML: backpropagation through every inner step with Hessian-vector products.
    case second
    /// First-order MAML (FOMAML): the query gradient at the adapted parameters.
    case first
    /// Reptile: theta minus the adapted parameters.
    case reptile
}
