import Core
import Datasets

/// Images without labels, in groups (an imaging style, a volume, a folder).
public protocol UnlabelledImages: Sendable {
    var identity: DatasetIdentity { get }
    var imageShape: FeatureShape { get }
    var groups: [String] { get }
    /// Images in a group (generated sources may be practically unbounded).
    func imageCount(group: Int) -> Int
    /// Image `index` of `group`, preprocessed as for training (resized, normalised).
    func image(group: Int, index: Int) throws(DataError) -> [Float]
}
