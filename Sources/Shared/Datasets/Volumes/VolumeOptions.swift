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
    /// Draw the support from one volume and the query from another, so that no query slice
    /// ever neighbours a support slice (a new patient's scans, or the halves of one scan);
    /// overrides `sameVolume`.
    public var separateVolumes = false
    /// Light augmentation: flips, rotations up to 10 degrees, intensity jitter.
    public var augment = false
    /// Skip unreadable or inconsistent cases with a warning instead of stopping.
    public var skipBad = false

    public init() {}

    private enum CodingKeys: String, CodingKey { case axis, size, normalisation, requireLabel, sameVolume, separateVolumes, augment, skipBad }

    /// Fields added later are written only when set, so the options of a dataset opened the
    /// old way (and its fingerprint) stay as they were.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(axis, forKey: .axis)
        try c.encode(size, forKey: .size)
        try c.encode(normalisation, forKey: .normalisation)
        try c.encode(requireLabel, forKey: .requireLabel)
        try c.encode(sameVolume, forKey: .sameVolume)
        if separateVolumes { try c.encode(separateVolumes, forKey: .separateVolumes) }
        try c.encode(augment, forKey: .augment)
        try c.encode(skipBad, forKey: .skipBad)
    }

    /// Options saved before `separateVolumes` existed read with it off.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        axis = try c.decode(SliceAxis.self, forKey: .axis)
        size = try c.decode(Int.self, forKey: .size)
        normalisation = try c.decode(IntensityNormalisation.self, forKey: .normalisation)
        requireLabel = try c.decode(Bool.self, forKey: .requireLabel)
        sameVolume = try c.decode(Bool.self, forKey: .sameVolume)
        separateVolumes = try c.decodeIfPresent(Bool.self, forKey: .separateVolumes) ?? false
        augment = try c.decode(Bool.self, forKey: .augment)
        skipBad = try c.decode(Bool.self, forKey: .skipBad)
    }
}
