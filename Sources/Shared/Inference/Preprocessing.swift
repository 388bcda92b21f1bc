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

    /// A volume cut into prepared slices. The volume is kept normalised on its native grid and
    /// each slice is resampled when asked for, so preparing a volume costs no memory beyond
    /// its own values whatever its number of slices (labels, when given, are prepared at once).
    public struct Slices: Sendable {
        public var slicer: VolumeSlicer
        /// The normalised volume (x fastest, the slicer's dims).
        public var normalised: [Float]
        /// Label values per prepared slice (nearest), slices x height x width, when labels were given.
        public var labels: [UInt8]
        public var height: Int
        public var width: Int
        /// mm per pixel of the prepared slices (row, column).
        public var spacing: (Double, Double)
        /// mm per pixel of the native slices (row, column).
        public var nativeSpacing: (Double, Double)
        /// Slices are resampled to height x width (false: taken as they are).
        var resampled: Bool

        public var plane: Int { height * width }

        /// Prepared slice `s`, height x width.
        public func image(_ s: Int) -> [Float] {
            let native = slicer.slice(normalised, s)
            guard resampled else { return native }
            return Resample.bilinear(native, height: slicer.height, width: slicer.width, outHeight: height, outWidth: width)
        }

        public func labels(_ s: Int) -> [UInt8] { Array(labels[(s * plane)..<((s + 1) * plane)]) }
    }

    /// Normalises and slices `volume` (with `labels`, a label map on the same grid, when given).
    public func slices(of volume: NIfTIVolume, labels: NIfTIVolume? = nil) -> Slices {
        var copy = volume
        return slices(taking: &copy, labels: labels)
    }

    /// Normalises and slices `volume`, taking its values over (normalised in place, not
    /// copied): `volume` keeps its header and geometry, with no values.
    public func slices(taking volume: inout NIfTIVolume, labels: NIfTIVolume? = nil) -> Slices {
        var values: [Float] = []
        swap(&values, &volume.values)
        options.normalisation.apply(&values)
        let slicer = VolumeSlicer(dims: volume.dims, axis: options.axis)
        let native = DecathlonDataset.inPlane(volume.spacing, axis: options.axis)
        let (h, w): (Int, Int)
        let spacing: (Double, Double)
        switch options.resampling {
        case .spacing(let target):
            (h, w) = slicer.resampledSize(spacing: native, target: target)
            spacing = (target, target)
        case .squash, .medianSpacing:
            (h, w) = (options.size, options.size)
            spacing = (native.0 * Double(slicer.height) / Double(h), native.1 * Double(slicer.width) / Double(w))
        }
        var prepared: [UInt8] = []
        if let labels {
            let values = labels.values.map { UInt8(min(max($0.rounded(), 0), 255)) }
            prepared.reserveCapacity(slicer.count * h * w)
            for s in 0..<slicer.count {
                prepared += Resample.nearest(slicer.slice(values, s), height: slicer.height, width: slicer.width, outHeight: h, outWidth: w)
            }
        }
        return Slices(slicer: slicer, normalised: values, labels: prepared, height: h, width: w, spacing: spacing,
                      nativeSpacing: native, resampled: true)
    }

    /// A 2D image (a PNG: no voxel size) prepared as one slice: normalised, squashed to the
    /// model's input for `squash` models, kept at its own pixels otherwise.
    public func slice(image: [Float], height: Int, width: Int, labels: [UInt8] = []) -> Slices {
        var values = image
        options.normalisation.apply(&values)
        let slicer = VolumeSlicer(dims: (width, height, 1), axis: .axial)
        if options.resampling == .squash {
            let size = options.size
            let l = labels.isEmpty ? [] : Resample.nearest(labels, height: height, width: width, outHeight: size, outWidth: size)
            return Slices(slicer: slicer, normalised: values, labels: l, height: size, width: size,
                          spacing: (Double(height) / Double(size), Double(width) / Double(size)), nativeSpacing: (1, 1), resampled: true)
        }
        return Slices(slicer: slicer, normalised: values, labels: labels, height: height, width: width, spacing: (1, 1),
                      nativeSpacing: (1, 1), resampled: false)
    }
}
