/// How volume (and PNG) datasets are turned into tasks.
public struct VolumeOptions: Codable, Hashable, Sendable {
    public var axis: SliceAxis = .axial
    /// Model input size (slices are resized to size x size).
    public var size = 64
    public var normalisation: IntensityNormalisation = .standard
    /// Support and query slices must contain the task's label.
    public var requireLabel = true
    /// Draw a sample's support and query from one volume when one has enough slices
    /// (MetaMedSeg); otherwise across volumes.
    public var sameVolume = true
    /// Light augmentation: flips, rotations up to 10 degrees, intensity jitter.
    public var augment = false
    /// Skip unreadable or inconsistent cases with a warning instead of stopping.
    public var skipBad = false

    public init() {}
}
