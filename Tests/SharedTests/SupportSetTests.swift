import Datasets
import Foundation
import Inference
import Testing
import TestSupport

/// The examples `predict` adapts from: one window per support slice around the structure, or
/// with `.wholeSlices` a grid of windows covering each slice, so that every labelled pixel of
/// the slices is among the examples and the structure keeps its share of them.
@Suite struct SupportSetTests {
    @Test func wholeSlicesCoverEveryLabelledPixelOfTheSlices() throws {
        let tmp = TemporaryFolder()
        let file = NIfTIStreamingTests.file(dims: (64, 48, 4)).data
        var volume = try NIfTIVolume.read(path: tmp.write("case.nii", file))
        let labels = try NIfTIVolume.decode(file, path: "labels")
        let slices = try Preprocessing(options: PreprocessingTests.options(.spacing(1.0), .axial)).slices(taking: &volume, labels: labels)
        #expect(slices.width > 32 && slices.height > 32)
        let cases = [SupportSet.Case(name: "case", slices: slices)]
        // The commonest label of the first slice; with as many shots as slices every slice
        // that holds it is taken.
        var counts = [UInt8: Int]()
        for v in slices.labels(0) where v > 0 { counts[v, default: 0] += 1 }
        let label = try #require(counts.max { $0.value < $1.value }?.key)
        let holding = (0..<slices.slicer.count).filter { slices.labels($0).contains(label) }
        let labelled = holding.reduce(0) { $0 + slices.labels($1).filter { $0 == label }.count }
        let pixels = holding.count * slices.height * slices.width

        let around = try SupportSet.examples(of: label, in: cases, shots: 4, size: 32)
        #expect(around.supportCount == holding.count)

        let whole = try SupportSet.examples(of: label, in: cases, shots: 4, size: 32, cut: .wholeSlices)
        let rows = (slices.height + 31) / 32, columns = (slices.width + 31) / 32
        #expect(whole.supportCount == holding.count * rows * columns)
        #expect(whole.supportImages.count == whole.supportCount * 32 * 32)
        // Every labelled pixel is in a window (the last window of a row or column overlaps its
        // neighbour, so some are counted twice), and the share of the label stays the slices'.
        let inWindows = Int(whole.supportMasks.reduce(0, +))
        #expect(inWindows >= labelled)
        let share = Double(labelled) / Double(pixels), windowShare = Double(inWindows) / Double(whole.supportMasks.count)
        #expect(abs(windowShare - share) < 0.5 * share, "label \(label): \(windowShare) in the windows, \(share) in the slices")
    }
}
