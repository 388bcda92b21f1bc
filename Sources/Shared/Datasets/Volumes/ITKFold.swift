import Foundation

/// The real-scan fold anyone can rebuild: Debian's `insighttoolkit5-examples` ships one T1 MRI
/// volume (128x128x62 voxels of 2x2x3 mm) with a seven-class k-means tissue segmentation (an
/// algorithm's labels, not an expert's) and two unlabelled BrainWeb slices. `write` turns them
/// into a Decathlon-layout dataset:
///
/// - the volume cut into two halves along its third axis (slices 0-30 and 31-61), two cases,
///   so that a study drawing the support from one case and the query from the other
///   (`VolumeOptions.separateVolumes`) never adapts and scores on neighbouring slices of the
///   same region;
/// - labels: k-means classes 2-6 as tasks 1-5 (class 1 is the air around the head, and the
///   126 voxels of class 0 lie in it: both are background), named by their mean T1 intensity
///   rank;
/// - the two BrainWeb slices (T1 and proton density) as unlabelled one-slice volumes in
///   imagesTs/, for pretraining.
///
/// One subject is a smoke test of transfer to real scans, not a benchmark.
public enum ITKFold {
    /// Where Debian installs the data.
    public static let defaultSource = "/usr/share/doc/insighttoolkit5-examples/examples/Data"

    public static let image = "KmeansTest_T1UCharRaw.nii.gz"
    static let segmentation = "KmeansTest_T1KmeansPrelimSegmentation.nii.gz"
    static let slices = ["BrainT1Slice.png", "BrainProtonDensitySlice.png"]

    /// Writes the dataset into `folder` (created; files already there are replaced). Throws
    /// naming the file when the package's data is missing or not what it should be.
    public static func write(from source: String = defaultSource, to folder: String) throws(DataError) -> [String] {
        let t1 = try NIfTIVolume.read(path: source + "/" + image)
        let seg = try NIfTIVolume.read(path: source + "/" + segmentation)
        guard t1.dims == seg.dims, t1.dims.z >= 2 else {
            throw .invalid(path: source + "/" + segmentation, reason: "the segmentation's size \(seg.dims) is not the image's \(t1.dims)")
        }
        // Classes 2...6 ranked by mean T1 intensity.
        var sums = [Double](repeating: 0, count: 7), counts = [Double](repeating: 0, count: 7)
        for (v, l) in zip(t1.values, seg.values) {
            guard l == l.rounded(), (0...6).contains(l) else {
                throw .invalid(path: source + "/" + segmentation, reason: "label \(l) is not a k-means class 0...6")
            }
            sums[Int(l)] += Double(v)
            counts[Int(l)] += 1
        }
        let classes = (2...6).sorted { sums[$0] / max(counts[$0], 1) < sums[$1] / max(counts[$1], 1) }
        var newLabel = [Float](repeating: 0, count: 7)
        for (rank, c) in classes.enumerated() { newLabel[c] = Float(rank + 1) }
        let labels = seg.values.map { newLabel[Int($0)] }

        let fm = FileManager.default
        for sub in ["imagesTr", "labelsTr", "imagesTs"] {
            do { try fm.createDirectory(atPath: folder + "/" + sub, withIntermediateDirectories: true) } catch {
                throw .unreadable(path: folder + "/" + sub, reason: "cannot create: \(error)")
            }
        }
        let (nx, ny, nz) = t1.dims
        let plane = nx * ny, half = nz / 2
        var training: [[String: String]] = []
        for (i, range) in [0..<half, half..<nz].enumerated() {
            let name = "t1_part\(i + 1)"
            let image = Array(t1.values[(range.lowerBound * plane)..<(range.upperBound * plane)])
            let label = Array(labels[(range.lowerBound * plane)..<(range.upperBound * plane)])
            try NIfTIVolume.writeVolume(image, dims: (nx, ny, range.count), like: t1, firstSlice: range.lowerBound, datatype: 16,
                                        to: folder + "/imagesTr/\(name)_0000.nii.gz")
            try NIfTIVolume.writeVolume(label, dims: (nx, ny, range.count), like: seg, firstSlice: range.lowerBound, datatype: 2,
                                        to: folder + "/labelsTr/\(name).nii.gz")
            training.append(["image": "./imagesTr/\(name)_0000.nii.gz", "label": "./labelsTr/\(name).nii.gz"])
        }
        var test: [String] = []
        for file in slices where fm.fileExists(atPath: source + "/" + file) {
            let g = try PNG.read(path: source + "/" + file)
            let name = file.replacingOccurrences(of: ".png", with: "")
            // A one-slice volume of 1x1x1 mm: the slice's rows run along y.
            try NIfTIVolume.writeVolume(g.samples.map(Float.init), dims: (g.width, g.height, 1), like: plainHeader(spacing: 1),
                                        datatype: 16, to: folder + "/imagesTs/\(name)_0000.nii.gz")
            test.append("./imagesTs/\(name)_0000.nii.gz")
        }
        let names = ["background"] + classes.enumerated().map { "tissue-\($0.offset + 1) (k-means class \($0.element))" }
        let json: [String: Any] = [
            "name": "ITK_T1_KMeans",
            "description": "One subject's T1 MRI (ITK's KmeansTest data, Debian insighttoolkit5-examples) with a k-means tissue segmentation (an algorithm's labels, not an expert's), cut into two halves along its third axis; tissues numbered by mean T1 intensity. A smoke test of transfer to real scans, not a benchmark.",
            "modality": ["0": "MRI"],
            "labels": Dictionary(uniqueKeysWithValues: names.enumerated().map { (String($0.offset), $0.element) }),
            "numTraining": training.count, "training": training, "test": test,
        ]
        do {
            let data = try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys, .prettyPrinted])
            try data.write(to: URL(fileURLWithPath: folder + "/dataset.json"), options: .atomic)
        } catch {
            throw .unreadable(path: folder + "/dataset.json", reason: "cannot write: \(error)")
        }
        return names
    }

    /// A NIfTI-1 header for a plain volume with isotropic `spacing` and an identity affine.
    static func plainHeader(spacing: Float) -> NIfTIVolume {
        var h = [UInt8](repeating: 0, count: 348)
        func put16(_ at: Int, _ v: Int16) { withUnsafeBytes(of: v.littleEndian) { for (i, b) in $0.enumerated() { h[at + i] = b } } }
        func put32(_ at: Int, _ v: Int32) { withUnsafeBytes(of: v.littleEndian) { for (i, b) in $0.enumerated() { h[at + i] = b } } }
        func putF(_ at: Int, _ v: Float) { withUnsafeBytes(of: v.bitPattern.littleEndian) { for (i, b) in $0.enumerated() { h[at + i] = b } } }
        put32(0, 348)
        putF(76, 1)
        for i in 1...3 { putF(76 + 4 * i, spacing) }
        put16(254, 1)   // sform: scanner coordinates
        putF(280, spacing); putF(300, spacing); putF(320, spacing)
        for (i, b) in "n+1\0".utf8.enumerated() { h[344 + i] = b }
        return NIfTIVolume(dims: (1, 1, 1), spacing: (spacing, spacing, spacing), values: [0], header: h, bigEndian: false, datatype: 16,
                           extraVolumesDropped: 0)
    }
}
