import Core
import Foundation
import Logging

/// Folders of 2D PNG images: `<root>/<task>/images/*.png` with masks of the same file names in
/// `<root>/<task>/masks/`. 8- and 16-bit grayscale (colour is converted to luminance); masks
/// are binarised (> 0). Images are resized to the model input (bilinear, masks nearest) and
/// normalised per image. Task names are `<root folder name>/<task>`.
public final class PNGFolderDataset: TaskSource, DescribedSource, @unchecked Sendable {
    public let root: String
    public let name: String
    public let options: VolumeOptions
    public let identity: DatasetIdentity
    public let taskNames: [String]
    /// Per task: images (size x size each) and masks.
    let images: [[[Float]]]
    let masks: [[[Float]]]
    public let warnings: [String]

    public var imageShape: FeatureShape { FeatureShape(channels: 1, height: options.size, width: options.size) }
    public var defaultSplit: TaskSplit { TaskSplit(testPatterns: []) }

    public init(root: String, options: VolumeOptions = VolumeOptions(), logger: Logger) throws(DataError) {
        self.root = root
        self.options = options
        name = URL(fileURLWithPath: root).lastPathComponent
        let fm = FileManager.default
        guard let entries = try? fm.contentsOfDirectory(atPath: root) else {
            throw .unreadable(path: root, reason: "not a readable folder")
        }
        var names: [String] = [], allImages: [[[Float]]] = [], allMasks: [[[Float]]] = [], warnings: [String] = []
        var digest = [UInt8](try Self.encoded(options, root))
        for task in entries.sorted() where !task.hasPrefix(".") {
            let imageDir = "\(root)/\(task)/images", maskDir = "\(root)/\(task)/masks"
            guard let files = try? fm.contentsOfDirectory(atPath: imageDir) else { continue }
            var taskImages: [[Float]] = [], taskMasks: [[Float]] = []
            for file in files.sorted() where file.lowercased().hasSuffix(".png") {
                do throws(DataError) {
                    let (image, imageBytes) = try Self.load(imageDir + "/" + file)
                    let maskPath = maskDir + "/" + file
                    guard fm.fileExists(atPath: maskPath) else {
                        throw .invalid(path: maskPath, reason: "missing mask for \(imageDir)/\(file)")
                    }
                    let (mask, maskBytes) = try Self.load(maskPath)
                    guard mask.width == image.width, mask.height == image.height else {
                        throw .invalid(path: maskPath, reason: "mask is \(mask.width)x\(mask.height), image is \(image.width)x\(image.height)")
                    }
                    digest += Array((task + "/" + file).utf8) + Array(SHA256.hex(imageBytes).utf8) + Array(SHA256.hex(maskBytes).utf8)
                    var pixels = Resample.bilinear(image.samples.map(Float.init), height: image.height, width: image.width,
                                                   outHeight: options.size, outWidth: options.size)
                    options.normalisation.apply(&pixels)
                    let binary = mask.samples.map { $0 > 0 ? Float(1) : 0 }
                    taskImages.append(pixels)
                    taskMasks.append(Resample.nearest(binary, height: mask.height, width: mask.width,
                                                      outHeight: options.size, outWidth: options.size))
                } catch {
                    guard options.skipBad else { throw error }
                    warnings.append("skipped image: \(error)")
                }
            }
            if taskImages.isEmpty {
                let message = "task \(task) has no usable images"
                guard options.skipBad else { throw .emptyTask(task: "\(name)/\(task)", reason: "no usable images in \(imageDir)") }
                warnings.append(message)
                continue
            }
            names.append("\(name)/\(task)")
            allImages.append(taskImages)
            allMasks.append(taskMasks)
        }
        guard !names.isEmpty else {
            throw .emptyTask(task: name, reason: "no <task>/images/*.png folders under \(root)")
        }
        taskNames = names
        images = allImages
        masks = allMasks
        self.warnings = warnings
        for w in warnings { logger.warning("\(w)") }
        identity = DatasetIdentity(name: name, fingerprint: SHA256.hex(digest))
    }

    /// Reads and decodes one PNG file, returning it with its bytes (for fingerprints).
    public static func load(_ path: String) throws(DataError) -> (PNG.Gray, [UInt8]) {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .unreadable(path: path, reason: "no such file or not readable")
        }
        return (try PNG.decode(data, path: path), [UInt8](data))
    }

    public func sample(task: Int, index: UInt64, seed: UInt64, support: Int, query: Int) throws(DataError) -> TaskSample {
        guard task >= 0, task < taskNames.count else { throw .badRequest("no task number \(task) in \(name)") }
        guard support > 0, query >= 0 else { throw .badRequest("bad shot counts \(support)+\(query)") }
        let available = images[task].count
        guard available >= support + query else {
            throw .emptyTask(task: taskNames[task], reason: "has \(available) images, a sample needs \(support + query)")
        }
        var rng = RandomStream(key: [seed, stableHash(taskNames[task]), index])
        var order = Array(0..<available)
        rng.shuffle(&order)
        var imgs: [Float] = [], msks: [Float] = []
        for (k, i) in order.prefix(support + query).enumerated() {
            var image = images[task][i], mask = masks[task][i]
            if options.augment {
                var arng = RandomStream(key: [seed, stableHash(taskNames[task]), index, UInt64(k), 0xA06])
                Augmentation.apply(image: &image, mask: &mask, size: options.size, rng: &arng)
            }
            imgs += image
            msks += mask
        }
        let split = support * options.size * options.size
        return TaskSample(shape: imageShape, supportImages: Array(imgs[..<split]), supportMasks: Array(msks[..<split]),
                          queryImages: Array(imgs[split...]), queryMasks: Array(msks[split...]))
    }

    public func details(task: Int) -> String? { "\(images[task].count) images" }

    /// The options as they enter the fingerprint.
    public static func encoded(_ options: VolumeOptions, _ root: String) throws(DataError) -> Data {
        do { return try canonicalJSON(options) } catch { throw .invalid(path: root, reason: "the options cannot be encoded: \(error)") }
    }
}
