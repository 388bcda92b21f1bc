import Core
import Datasets
import Foundation
import Logging

/// Unlabelled images from files: a Decathlon/nnU-Net folder's `imagesTs/` (or every image
/// with `includeTraining`), cut into slices, or a folder of PNG task folders (`<task>/images`,
/// masks ignored). One group per volume or per PNG task folder.
public final class FileUnlabelled: UnlabelledImages, @unchecked Sendable {
    public let identity: DatasetIdentity
    public let imageShape: FeatureShape
    public let groups: [String]
    let images: [[[Float]]]

    public init(root: String, options: VolumeOptions, includeTraining: Bool, logger: Logger) throws(DataError) {
        let fm = FileManager.default
        var groups: [String] = [], images: [[[Float]]] = []
        var digest = [UInt8](try PNGFolderDataset.encoded(options, root)) + Array("unlabelled \(includeTraining)".utf8)
        let size = options.size
        if fm.fileExists(atPath: root + "/dataset.json") {
            var files: [String] = []
            for folder in includeTraining ? ["imagesTs", "imagesTr"] : ["imagesTs"] {
                let list = (try? fm.contentsOfDirectory(atPath: root + "/" + folder)) ?? []
                files += list.filter { ($0.hasSuffix(".nii") || $0.hasSuffix(".nii.gz")) && !$0.hasPrefix(".") }.sorted().map { root + "/\(folder)/" + $0 }
            }
            for path in files {
                do throws(DataError) {
                    let v = try NIfTIVolume.read(path: path)
                    var values = v.values
                    options.normalisation.apply(&values)
                    let slicer = VolumeSlicer(dims: v.dims, axis: options.axis)
                    let (flat, _) = slicer.resizedSlices(values, labels: [], size: size)
                    images.append((0..<slicer.count).map { Array(flat[($0 * size * size)..<(($0 + 1) * size * size)]) })
                    groups.append(URL(fileURLWithPath: path).lastPathComponent)
                    digest += Array(v.fileDigest.utf8)
                } catch {
                    guard options.skipBad else { throw error }
                    logger.warning("skipping an unreadable volume: \(error)")
                }
            }
        } else {
            let tasks = ((try? fm.contentsOfDirectory(atPath: root)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
            for task in tasks {
                let dir = "\(root)/\(task)/images"
                guard let files = try? fm.contentsOfDirectory(atPath: dir) else { continue }
                var group: [[Float]] = []
                for f in files.sorted() where f.lowercased().hasSuffix(".png") {
                    do throws(DataError) {
                        let (g, bytes) = try PNGFolderDataset.load(dir + "/" + f)
                        var v = Resample.bilinear(g.samples.map(Float.init), height: g.height, width: g.width, outHeight: size, outWidth: size)
                        options.normalisation.apply(&v)
                        group.append(v)
                        digest += Array(SHA256.hex(bytes).utf8)
                    } catch {
                        guard options.skipBad else { throw error }
                        logger.warning("skipping an unreadable image: \(error)")
                    }
                }
                if !group.isEmpty { groups.append(task); images.append(group) }
            }
        }
        guard !groups.isEmpty else {
            throw .emptyTask(task: root, reason: includeTraining || !fm.fileExists(atPath: root + "/dataset.json")
                             ? "no unlabelled images found" : "no imagesTs/ volumes (use --include-training-images)")
        }
        self.groups = groups
        self.images = images
        imageShape = FeatureShape(channels: 1, height: size, width: size)
        identity = DatasetIdentity(name: URL(fileURLWithPath: root).lastPathComponent + "-unlabelled", fingerprint: SHA256.hex(digest))
    }

    public func imageCount(group: Int) -> Int { images[group].count }
    public func image(group: Int, index: Int) throws(DataError) -> [Float] {
        guard images.indices.contains(group), images[group].indices.contains(index) else { throw .badRequest("no image \(index) in group \(group)") }
        return images[group][index]
    }
}
