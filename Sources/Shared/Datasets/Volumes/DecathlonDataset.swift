import Core
import Foundation
import Logging

/// 2D slices of one case, normalised, and resized to the model's input (`squash`) or resampled
/// to the target spacing (then every slice of the case has the same `height` x `width`).
struct PreparedCase: Sendable {
    var name: String
    var images: [Float]     // slices x height x width
    var labels: [UInt8]     // slices x height x width
    var slices: Int
    var height: Int
    var width: Int
    var dims: (Int, Int, Int)
    var spacing: (Float, Float, Float)

    var plane: Int { height * width }
}

/// A Medical Segmentation Decathlon or nnU-Net (v1/v2) dataset: `dataset.json` with
/// `labels`, `imagesTr/` and `labelsTr/`. Every foreground label value is a binary task
/// `<dataset>/label-<value>/<axis>`; samples are 2D slices along the axis.
public final class DecathlonDataset: TaskSource, DescribedSource, @unchecked Sendable {
    public let root: String
    public let name: String
    public let options: VolumeOptions
    public let labelNames: [Int: String]
    public let identity: DatasetIdentity
    let cases: [PreparedCase]
    /// Per task: its label value and the (case, slice) pairs that contain it.
    let taskLabels: [Int]
    let labelled: [[(case: Int, slice: Int)]]
    public let warnings: [String]

    public var imageShape: FeatureShape { FeatureShape(channels: 1, height: options.size, width: options.size) }

    /// The in-plane spacing (row, column) of `spacing`'s voxels on `axis`'s slices.
    public static func inPlane(_ spacing: (Float, Float, Float), axis: SliceAxis) -> (Double, Double) {
        let (sx, sy, sz) = (Double(spacing.0), Double(spacing.1), Double(spacing.2))
        switch axis {
        case .axial: return (sy, sx)
        case .coronal: return (sz, sx)
        case .sagittal: return (sz, sy)
        }
    }

    /// The median over `files` of the mean in-plane spacing, to three significant digits.
    static func medianSpacing(_ files: [String], axis: SliceAxis) throws(DataError) -> Double {
        var values: [Double] = []
        for f in files {
            let (_, spacing) = try NIfTIVolume.readGeometry(path: f)
            let (r, c) = inPlane(spacing, axis: axis)
            values.append((r + c) / 2)
        }
        values.sort()
        let m = values.isEmpty ? 1 : values[values.count / 2]
        let scale = Foundation.pow(10, 2 - Foundation.floor(Foundation.log10(m)))
        return (m * scale).rounded() / scale
    }
    public var taskNames: [String] { taskLabels.map { "\(name)/label-\($0)/\(options.axis.rawValue)" } }
    public var defaultSplit: TaskSplit { TaskSplit(testPatterns: []) }

    /// Loads and prepares every training case. Throws `DataError` naming the file and the
    /// problem (or skips the case with a warning when `options.skipBad` is set).
    public init(root: String, options requested: VolumeOptions = VolumeOptions(), logger: Logger) throws(DataError) {
        self.root = root
        let jsonPath = root + "/dataset.json"
        guard let jsonData = FileManager.default.contents(atPath: jsonPath) else {
            throw .unreadable(path: jsonPath, reason: "no dataset.json (expected the Decathlon / nnU-Net layout)")
        }
        guard let json = try? JSONSerialization.jsonObject(with: jsonData) as? [String: Any] else {
            throw .invalid(path: jsonPath, reason: "not a JSON object")
        }
        guard let labelsAny = json["labels"] as? [String: Any], !labelsAny.isEmpty else {
            throw .invalid(path: jsonPath, reason: "missing \"labels\"")
        }
        // Decathlon: {"1": "spleen"}; nnU-Net v2: {"spleen": 1}.
        var labels: [Int: String] = [:]
        for (k, v) in labelsAny {
            let value: Int
            if let number = Int(k), let n = v as? String { value = number; labels[value] = n }
            else if let number = v as? NSNumber, let exact = Int(exactly: number.doubleValue) { value = exact; labels[value] = k }
            else if v is [Any] { throw .unsupported(path: jsonPath, reason: "region-based labels (\"\(k.prefix(40))\") are not supported") }
            else { throw .invalid(path: jsonPath, reason: "label entry \"\(k.prefix(40))\" is neither value->name nor name->value") }
            // Label maps are read as 8-bit values (0 is the background).
            guard (0...Self.maximumLabel).contains(value) else {
                throw .invalid(path: jsonPath, reason: "label value \(value) is outside 0...\(Self.maximumLabel)")
            }
        }
        labelNames = labels
        let base = URL(fileURLWithPath: root).lastPathComponent
        name = base.isEmpty ? (json["name"] as? String ?? "dataset") : base

        // Training pairs: listed (Decathlon) or found by file names (nnU-Net v2).
        var pairs: [(image: String, label: String)] = []
        if let training = json["training"] as? [[String: Any]], !training.isEmpty {
            for entry in training {
                guard let image = entry["image"] as? String, let label = entry["label"] as? String else {
                    throw .invalid(path: jsonPath, reason: "a training entry lacks \"image\" or \"label\"")
                }
                pairs.append((try Self.resolve(root, image, in: jsonPath), try Self.resolve(root, label, in: jsonPath)))
            }
        } else {
            let ending = json["file_ending"] as? String ?? ".nii.gz"
            let labelDir = root + "/labelsTr"
            guard let files = try? FileManager.default.contentsOfDirectory(atPath: labelDir) else {
                throw .unreadable(path: labelDir, reason: "no labelsTr folder")
            }
            for file in files.sorted() where file.hasSuffix(ending) && !file.hasPrefix(".") {
                let caseName = String(file.dropLast(ending.count))
                pairs.append((root + "/imagesTr/" + caseName + "_0000" + ending, labelDir + "/" + file))
            }
        }
        guard !pairs.isEmpty else { throw .emptyTask(task: name, reason: "no training cases in \(root)") }
        var options = requested
        if options.resampling == .medianSpacing {
            options.resampling = .spacing(try Self.medianSpacing(pairs.map(\.image), axis: options.axis))
        }
        self.options = options

        var prepared: [PreparedCase] = []
        var warnings: [String] = []
        var hasher = [UInt8](jsonData)
        let optionsJSON = try PNGFolderDataset.encoded(options, root)
        hasher += [UInt8](optionsJSON)
        for (imagePath, labelPath) in pairs {
            do throws(DataError) {
                let c = try Self.prepare(image: imagePath, label: labelPath, labels: labels, options: options,
                                         warnings: &warnings, digest: &hasher)
                prepared.append(c)
            } catch {
                guard options.skipBad else { throw error }
                warnings.append("skipped case: \(error)")
                logger.warning("skipping a bad case", metadata: ["error": "\(error)"])
            }
        }
        guard !prepared.isEmpty else { throw .emptyTask(task: name, reason: "every case was bad") }
        cases = prepared

        var taskLabels: [Int] = [], labelled: [[(case: Int, slice: Int)]] = []
        for value in labels.keys.sorted() where value != 0 {
            var list: [(case: Int, slice: Int)] = []
            for (ci, c) in prepared.enumerated() {
                let plane = c.plane
                for s in 0..<c.slices where !options.requireLabel || c.labels[(s * plane)..<((s + 1) * plane)].contains(UInt8(value)) {
                    list.append((ci, s))
                }
            }
            if list.isEmpty {
                let message = "label \(value) (\(labels[value]!)) appears in no slice"
                guard options.skipBad else { throw .emptyTask(task: "\(name)/label-\(value)", reason: message) }
                warnings.append("dropped task: " + message)
                continue
            }
            taskLabels.append(value)
            labelled.append(list)
        }
        guard !taskLabels.isEmpty else { throw .emptyTask(task: name, reason: "no foreground label has any slice") }
        self.taskLabels = taskLabels
        self.labelled = labelled
        self.warnings = warnings
        for w in warnings { logger.warning("\(w)") }
        identity = DatasetIdentity(name: name, fingerprint: SHA256.hex(hasher))
    }

    /// The largest label value a task can have: label maps are read as 8-bit values.
    public static let maximumLabel = 255

    /// A path from dataset.json, inside the dataset folder: relative, with no `..` component
    /// (a file list may not send the reader elsewhere on the machine).
    static func resolve(_ root: String, _ relative: String, in jsonPath: String) throws(DataError) -> String {
        let parts = relative.split(separator: "/", omittingEmptySubsequences: true)
        guard !relative.hasPrefix("/"), !relative.contains("\0"), !parts.isEmpty, !parts.contains("..") else {
            throw .invalid(path: jsonPath, reason: "path \"\(relative.prefix(200))\" leaves the dataset folder (paths must be relative, without ..)")
        }
        return root + "/" + parts.filter { $0 != "." }.joined(separator: "/")
    }

    /// Reads one case and cuts it into resized, normalised slices. The digest accumulates the
    /// file contents' hashes for the dataset fingerprint.
    static func prepare(image: String, label: String, labels: [Int: String], options: VolumeOptions,
                        warnings: inout [String], digest: inout [UInt8]) throws(DataError) -> PreparedCase {
        let img = try NIfTIVolume.read(path: image)
        let lab = try NIfTIVolume.read(path: label)
        for (path, v) in [(image, img), (label, lab)] {
            digest += Array(v.fileDigest.utf8)
            if v.extraVolumesDropped > 0 { warnings.append("\(path): 4D file, using the first of \(v.extraVolumesDropped + 1) volumes") }
        }
        guard img.dims == lab.dims else {
            throw .invalid(path: label, reason: "label size \(lab.dims) differs from image size \(img.dims) (\(image))")
        }
        var labelValues = [UInt8](repeating: 0, count: lab.values.count)
        for (i, v) in lab.values.enumerated() {
            guard v == v.rounded(), v >= 0, v <= 255 else {
                throw .invalid(path: label, reason: "label value \(v) is not an integer in 0...255")
            }
            guard v == 0 || labels[Int(v)] != nil else {
                throw .invalid(path: label, reason: "label value \(Int(v)) is not declared in dataset.json")
            }
            labelValues[i] = UInt8(v)
        }
        var values = img.values
        options.normalisation.apply(&values)
        let slicer = VolumeSlicer(dims: img.dims, axis: options.axis)
        let caseName = URL(fileURLWithPath: label).lastPathComponent
        if case .spacing(let target) = options.resampling {
            let (rows, columns) = inPlane(img.spacing, axis: options.axis)
            let (images, slices, h, w) = slicer.resampledSlices(values, labels: labelValues, spacing: (rows, columns), target: target)
            return PreparedCase(name: caseName, images: images, labels: slices, slices: slicer.count, height: h, width: w,
                                dims: img.dims, spacing: img.spacing)
        }
        let (images, slices) = slicer.resizedSlices(values, labels: labelValues, size: options.size)
        return PreparedCase(name: caseName, images: images, labels: slices, slices: slicer.count, height: options.size, width: options.size,
                            dims: img.dims, spacing: img.spacing)
    }

    public func sample(task: Int, index: UInt64, seed: UInt64, support: Int, query: Int) throws(DataError) -> TaskSample {
        guard task >= 0, task < taskLabels.count else { throw .badRequest("no task number \(task) in \(name)") }
        guard support > 0, query >= 0 else { throw .badRequest("bad shot counts \(support)+\(query)") }
        let need = support + query
        let pool = labelled[task]
        var rng = RandomStream(key: [seed, stableHash(taskNames[task]), index])
        var chosen: [(case: Int, slice: Int)]
        // MetaMedSeg: one volume when some volume has enough slices with the label.
        var byCase: [Int: [(case: Int, slice: Int)]] = [:]
        for p in pool { byCase[p.case, default: []].append(p) }
        let rich = byCase.keys.sorted().filter { byCase[$0]!.count >= need }
        if options.separateVolumes {
            // The support from one volume, the query from another.
            let cases = byCase.keys.sorted()
            let supportCases = cases.filter { byCase[$0]!.count >= support }
            guard !supportCases.isEmpty else {
                throw .emptyTask(task: taskNames[task], reason: "no volume has \(support) slices with the label for a support set")
            }
            let supportCase = supportCases[rng.below(supportCases.count)]
            let queryCases = cases.filter { $0 != supportCase && byCase[$0]!.count >= query }
            guard !queryCases.isEmpty else {
                throw .emptyTask(task: taskNames[task], reason: "no second volume has \(query) slices with the label for a query set apart from the support")
            }
            var first = byCase[supportCase]!, second = byCase[queryCases[rng.below(queryCases.count)]]!
            rng.shuffle(&first)
            rng.shuffle(&second)
            chosen = Array(first.prefix(support)) + Array(second.prefix(query))
        } else {
            if options.sameVolume, !rich.isEmpty {
                chosen = byCase[rich[rng.below(rich.count)]]!
            } else {
                chosen = pool
            }
            guard chosen.count >= need else {
                throw .emptyTask(task: taskNames[task], reason: "has \(chosen.count) usable slices, a sample needs \(need)")
            }
            rng.shuffle(&chosen)
        }
        let value = UInt8(taskLabels[task])
        var images: [Float] = [], masks: [Float] = []
        for (k, p) in chosen.prefix(need).enumerated() {
            let c = cases[p.case], plane = c.plane
            var image = Array(c.images[(p.slice * plane)..<((p.slice + 1) * plane)])
            var mask = c.labels[(p.slice * plane)..<((p.slice + 1) * plane)].map { $0 == value ? Float(1) : 0 }
            if c.height != options.size || c.width != options.size {
                // A patch of the model's size that holds some of the structure (nnU-Net samples
                // foreground patches; a few-shot example without its structure teaches nothing).
                var prng = RandomStream(key: [seed, stableHash(taskNames[task]), index, UInt64(k), 0x7061_7463])
                let window = Patch.window(around: mask, height: c.height, width: c.width, size: options.size, rng: &prng)
                image = Patch.cut(image, height: c.height, width: c.width, window: window, size: options.size, fill: image.min() ?? 0)
                mask = Patch.cut(mask, height: c.height, width: c.width, window: window, size: options.size, fill: 0)
            }
            if options.augment {
                var arng = RandomStream(key: [seed, stableHash(taskNames[task]), index, UInt64(k), 0xA06])
                Augmentation.apply(image: &image, mask: &mask, size: options.size, rng: &arng)
            }
            images += image
            masks += mask
        }
        let split = support * options.size * options.size
        var sample = TaskSample(shape: imageShape, supportImages: Array(images[..<split]), supportMasks: Array(masks[..<split]),
                                queryImages: Array(images[split...]), queryMasks: Array(masks[split...]))
        let spacings = Set(chosen.prefix(need).map { pixelSpacing(cases[$0.case]) })
        if spacings.count == 1, !options.augment { sample.spacing = spacings.first }
        return sample
    }

    /// Row and column size in mm of a prepared slice of `c`.
    func pixelSpacing(_ c: PreparedCase) -> [Double] {
        if case .spacing(let t) = options.resampling { return [t, t] }
        let (nx, ny, nz) = c.dims
        let (sx, sy, sz) = (Double(c.spacing.0), Double(c.spacing.1), Double(c.spacing.2))
        let size = Double(options.size)
        switch options.axis {
        case .axial: return [sy * Double(ny) / size, sx * Double(nx) / size]
        case .coronal: return [sz * Double(nz) / size, sx * Double(nx) / size]
        case .sagittal: return [sz * Double(nz) / size, sy * Double(ny) / size]
        }
    }

    public func details(task: Int) -> String? {
        let pool = labelled[task]
        let volumes = Set(pool.map(\.case)).count
        return "\(labelNames[taskLabels[task]] ?? "?"): \(pool.count) slices in \(volumes)/\(cases.count) volumes"
    }

    /// Per case: name, dimensions, voxel size and slice count.
    public var caseSummaries: [String] {
        cases.map { "\($0.name): \($0.dims.0)x\($0.dims.1)x\($0.dims.2) voxels of \($0.spacing.0)x\($0.spacing.1)x\($0.spacing.2), \($0.slices) \(options.axis.rawValue) slices of \($0.height)x\($0.width) (\(options.resampling))" }
    }
}
