import Datasets
import Foundation
import Inference
import Testing
import TestSupport

/// Prepared slices are made one at a time from the normalised volume, with the very values the
/// dataset's eager path (`VolumeSlicer`) gives every slice at once.
@Suite struct PreprocessingTests {
    static func options(_ resampling: VolumeOptions.Resampling, _ axis: SliceAxis) -> VolumeOptions {
        var o = VolumeOptions()
        o.resampling = resampling
        o.axis = axis
        o.size = 32
        return o
    }

    @Test(arguments: [VolumeOptions.Resampling.spacing(1.3), .squash], SliceAxis.allCases)
    func slicesPreparedOnDemandEqualTheEagerOnes(_ resampling: VolumeOptions.Resampling, _ axis: SliceAxis) throws {
        let tmp = TemporaryFolder()
        let file = NIfTIStreamingTests.file(dims: (30, 22, 9)).data
        var volume = try NIfTIVolume.read(path: tmp.write("case.nii", file))
        let original = volume.values
        let labels = try NIfTIVolume.decode(file, path: "labels")
        let preprocessing = try Preprocessing(options: Self.options(resampling, axis))
        let slices = preprocessing.slices(taking: &volume, labels: labels)
        #expect(volume.values.isEmpty && volume.dims == (30, 22, 9))

        var normalised = original
        preprocessing.options.normalisation.apply(&normalised)
        let slicer = VolumeSlicer(dims: (30, 22, 9), axis: axis)
        let labelValues = labels.values.map { UInt8(min(max($0.rounded(), 0), 255)) }
        let native = DecathlonDataset.inPlane(labels.spacing, axis: axis)
        let images: [Float], eagerLabels: [UInt8]
        switch resampling {
        case .spacing(let target):
            let r = slicer.resampledSlices(normalised, labels: labelValues, spacing: native, target: target)
            (images, eagerLabels) = (r.images, r.labels)
            #expect((slices.height, slices.width) == (r.height, r.width))
        default:
            (images, eagerLabels) = slicer.resizedSlices(normalised, labels: labelValues, size: 32)
        }
        #expect(slices.labels == eagerLabels)
        let prepared = (0..<slicer.count).flatMap { slices.image($0) }
        #expect(prepared == images)
    }
}
