import Core
import Datasets

/// A synthetic family's images without their masks, grouped by imaging style.
public struct SyntheticUnlabelled: UnlabelledImages {
    public let family: SyntheticFamily
    public init(size: Int, variant: SyntheticFamily.Variant = .singleStructure) { family = SyntheticFamily(size: size, variant: variant) }
    public var identity: DatasetIdentity {
        DatasetIdentity(name: family.variant.rawValue + "-unlabelled", fingerprint: family.identity.fingerprint)
    }
    public var imageShape: FeatureShape { family.imageShape }
    public var groups: [String] { family.styles.map { "\(family.variant.rawValue)/\($0.rawValue)" } }
    public func imageCount(group: Int) -> Int { 1 << 40 }
    public func image(group: Int, index: Int) throws(DataError) -> [Float] {
        guard family.styles.indices.contains(group) else { throw .badRequest("no group \(group)") }
        // Any structure of the style: the task is picked by the index.
        let task = (index % family.structures.count) * family.styles.count + group
        return family.render(task: task, index: UInt64(index), seed: 0x5E1F, image: 0).image
    }
}
