/// Settings of the self-supervised pseudo-tasks.
public struct PseudoTaskOptions: Codable, Hashable, Sendable {
    /// Approximate superpixels per image.
    public var superpixels = 48
    public var compactness: Float = 0.6
    /// Neighbouring superpixels merged into the target (0 up to this many, at random).
    public var maximumMerged = 2
    /// The target covers between these fractions of the image.
    public var minimumArea = 0.01
    public var maximumArea = 0.25
    public init() {}
}
