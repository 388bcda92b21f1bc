/// How volume (and PNG) datasets are turned into tasks: the preprocessing a model is trained
/// with, stored with it, and applied identically when it adapts and predicts.
public struct VolumeOptions: Codable, Hashable, Sendable {
    /// How a slice becomes model input.
    public enum Resampling: Codable, Hashable, Sendable, CustomStringConvertible {
        /// The whole slice resized to the model's square input (aspect ratio and voxel size lost).
        case squash
        /// Resampled to this in-plane spacing (mm per pixel) keeping its aspect ratio; the model
        /// sees patches of its input size (sliding windows when predicting).
        case spacing(Double)
        /// The dataset's median in-plane spacing (as nnU-Net chooses it), resolved to `spacing`
        /// when the dataset is opened.
        case medianSpacing

        public var description: String {
            switch self {
            case .squash: "whole slices resized to the model's input"
            case .spacing(let mm): String(format: "%.3g mm pixels, patches of the model's input size", mm)
            case .medianSpacing: "the dataset's median spacing"
            }
        }
    }

    public var axis: SliceAxis = .axial
    /// Model input size: the square slices are resized to (`squash`), or the patches cut from
    /// resampled slices.
    public var size = 64
    /// Volumes only (PNG folders and generated families keep their pixels).
    public var resampling: Resampling = .squash
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

    private enum CodingKeys: String, CodingKey {
        case axis, size, resampling, normalisation, requireLabel, sameVolume, separateVolumes, augment, skipBad
    }

    /// Fields added later are written only when set, so the options of a dataset opened the
    /// old way (and its fingerprint) stay as they were.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(axis, forKey: .axis)
        try c.encode(size, forKey: .size)
        if resampling != .squash { try c.encode(resampling, forKey: .resampling) }
        try c.encode(normalisation, forKey: .normalisation)
        try c.encode(requireLabel, forKey: .requireLabel)
        try c.encode(sameVolume, forKey: .sameVolume)
        if separateVolumes { try c.encode(separateVolumes, forKey: .separateVolumes) }
        try c.encode(augment, forKey: .augment)
        try c.encode(skipBad, forKey: .skipBad)
    }

    /// Options saved before `resampling` and `separateVolumes` existed read as squashed slices
    /// and support and query from one volume.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        axis = try c.decode(SliceAxis.self, forKey: .axis)
        size = try c.decode(Int.self, forKey: .size)
        resampling = try c.decodeIfPresent(Resampling.self, forKey: .resampling) ?? .squash
        normalisation = try c.decode(IntensityNormalisation.self, forKey: .normalisation)
        requireLabel = try c.decode(Bool.self, forKey: .requireLabel)
        sameVolume = try c.decode(Bool.self, forKey: .sameVolume)
        separateVolumes = try c.decodeIfPresent(Bool.self, forKey: .separateVolumes) ?? false
        augment = try c.decode(Bool.self, forKey: .augment)
        skipBad = try c.decode(Bool.self, forKey: .skipBad)
    }
}
