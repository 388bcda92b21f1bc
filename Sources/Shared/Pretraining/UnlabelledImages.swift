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

extension UnlabelledImages {
    /// The identity of a pretext built on these images with `options`: the images' name
    /// after `prefix`, and a fingerprint that covers the images and the options.
    func pretextIdentity(_ prefix: String, options: some Encodable) -> DatasetIdentity {
        // Plain numbers: a pretext's options always encode.
        guard let json = try? canonicalJSON(options) else { preconditionFailure("\(prefix) options do not encode") }
        return DatasetIdentity(name: prefix + ":" + identity.name,
                               fingerprint: SHA256.hex(Array((identity.fingerprint + String(decoding: json, as: UTF8.self)).utf8)))
    }
}
