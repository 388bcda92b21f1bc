import Core
import Datasets

/// The labelled examples a model adapts from: K slices that hold the structure, spread evenly
/// over every support case's slices that hold it, each cut to patches of the model's input
/// (the whole squashed slice for models trained that way).
public enum SupportSet {
    /// How a support slice larger than the model's input becomes examples.
    public enum Cut: String, Sendable {
        /// One patch per slice around the structure, as training cut them: K examples, but
        /// the structure takes a larger share of them than of the slices.
        case aroundStructure
        /// Every patch of a grid that covers the slice: the slice's own balance of structure
        /// and background, at a cost in time and memory that grows with the slice's area.
        case wholeSlices
    }

    /// One support case, prepared: its slices and label values.
    public struct Case: Sendable {
        public var name: String
        public var slices: Preprocessing.Slices
        public init(name: String, slices: Preprocessing.Slices) {
            self.name = name
            self.slices = slices
        }
    }

    /// K examples of `label` from `cases`; throws naming the cases when none holds it.
    public static func examples(of label: UInt8, in cases: [Case], shots: Int, size: Int,
                                cut: Cut = .aroundStructure) throws(DataError) -> TaskSample {
        var pool: [(case: Int, slice: Int)] = []
        for (c, item) in cases.enumerated() {
            for s in 0..<item.slices.slicer.count where item.slices.labels(s).contains(label) { pool.append((c, s)) }
        }
        guard !pool.isEmpty else {
            throw .emptyTask(task: "label \(label)", reason: "no slice of the support (\(cases.map(\.name).joined(separator: ", "))) holds it")
        }
        let chosen = pool.count <= shots ? pool : (0..<shots).map { pool[$0 * (pool.count - 1) / max(shots - 1, 1)] }
        var images: [Float] = [], masks: [Float] = []
        for (k, p) in chosen.enumerated() {
            let s = cases[p.case].slices
            let image = s.image(p.slice)
            let mask = s.labels(p.slice).map { $0 == label ? Float(1) : 0 }
            guard s.height != size || s.width != size else {
                images += image
                masks += mask
                continue
            }
            let windows: [Patch.Window]
            switch cut {
            case .wholeSlices:
                windows = SlidingWindow.windows(height: s.height, width: s.width, size: size, overlap: 0)
            case .aroundStructure:
                var rng = RandomStream(key: [UInt64(label), UInt64(p.case), UInt64(p.slice), UInt64(k)])
                windows = [Patch.window(around: mask, height: s.height, width: s.width, size: size, rng: &rng)]
            }
            let fill = image.min() ?? 0
            for window in windows {
                images += Patch.cut(image, height: s.height, width: s.width, window: window, size: size, fill: fill)
                masks += Patch.cut(mask, height: s.height, width: s.width, window: window, size: size, fill: 0)
            }
        }
        return TaskSample(shape: FeatureShape(channels: 1, height: size, width: size), supportImages: images, supportMasks: masks,
                          queryImages: [], queryMasks: [])
    }
}
