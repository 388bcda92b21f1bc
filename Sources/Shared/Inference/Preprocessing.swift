import Core
import Datasets
import Foundation

/// A trained model's preprocessing (`VolumeOptions`, stored in its checkpoint), applied to a
/// new volume exactly as in training: intensities normalised per volume, 2D slices along the
/// axis, resampled to the model's spacing (or squashed to its input, for models trained that
/// way). The slices then go to the model as patches or sliding windows of its input size.
public struct Preprocessing: Sendable {
    public let options: VolumeOptions

    public init(options: VolumeOptions) throws(DataError) {
        guard options.resampling != .medianSpacing else {
            throw .badRequest("the model's preprocessing names no spacing (its dataset's median was never resolved); train it again")
        }
        self.options = options
    }

    /// A volume cut into prepared slices.
    public struct Slices: Sendable {
        public var slicer: VolumeSlicer
        /// Prepared slices, slices x height x width.
        public var images: [Float]
        /// Label values per prepared slice (nearest), when labels were given.
        public var labels: [UInt8]
        public var height: Int
        public var width: Int
        /// mm per pixel of the prepared slices (row, column).
        public var spacing: (Double, Double)
        /// mm per pixel of the native slices (row, column).
        public var nativeSpacing: (Double, Double)

        public var plane: Int { height * width }
        public func image(_ s: Int) -> [Float] { Array(images[(s * plane)..<((s + 1) * plane)]) }
        public func labels(_ s: Int) -> [UInt8] { Array(labels[(s * plane)..<((s + 1) * plane)]) }
    }

    /// Normalises and slices `volume` (with `labels`, a label map on the same grid, when given).
    public func slices(of volume: NIfTIVolume, labels: NIfTIVolume? = nil) -> Slices {
        var values = volume.values
        options.normalisation.apply(&values)
        let slicer = VolumeSlicer(dims: volume.dims, axis: options.axis)
        let labelValues = labels.map { $0.values.map { UInt8(min(max($0.rounded(), 0), 255)) } } ?? []
        let native = DecathlonDataset.inPlane(volume.spacing, axis: options.axis)
        switch options.resampling {
        case .spacing(let target):
            let (images, slices, h, w) = slicer.resampledSlices(values, labels: labelValues, spacing: native, target: target)
            return Slices(slicer: slicer, images: images, labels: slices, height: h, width: w, spacing: (target, target), nativeSpacing: native)
        case .squash, .medianSpacing:
            let size = options.size
            let (images, slices) = slicer.resizedSlices(values, labels: labelValues, size: size)
            let spacing = (native.0 * Double(slicer.height) / Double(size), native.1 * Double(slicer.width) / Double(size))
            return Slices(slicer: slicer, images: images, labels: slices, height: size, width: size, spacing: spacing, nativeSpacing: native)
        }
    }

    /// A 2D image (a PNG: no voxel size) prepared as one slice: normalised, squashed to the
    /// model's input for `squash` models, kept at its own pixels otherwise.
    public func slice(image: [Float], height: Int, width: Int, labels: [UInt8] = []) -> Slices {
        var values = image
        options.normalisation.apply(&values)
        let slicer = VolumeSlicer(dims: (width, height, 1), axis: .axial)
        if options.resampling == .squash {
            let size = options.size
            let resized = Resample.bilinear(values, height: height, width: width, outHeight: size, outWidth: size)
            let l = labels.isEmpty ? [] : Resample.nearest(labels, height: height, width: width, outHeight: size, outWidth: size)
            return Slices(slicer: slicer, images: resized, labels: l, height: size, width: size,
                          spacing: (Double(height) / Double(size), Double(width) / Double(size)), nativeSpacing: (1, 1))
        }
        return Slices(slicer: slicer, images: values, labels: labels, height: height, width: width, spacing: (1, 1), nativeSpacing: (1, 1))
    }
}
