/// Cuts a volume (x fastest) into 2D slices along an axis and puts slices back.
///
/// Rows run top to bottom; for coronal and sagittal slices superior (high z) is at the top.
public struct VolumeSlicer: Sendable {
    public let dims: (x: Int, y: Int, z: Int)
    public let axis: SliceAxis
    /// Slices along the axis, and each slice's rows and columns.
    public let count: Int, height: Int, width: Int

    public init(dims: (Int, Int, Int), axis: SliceAxis) {
        self.dims = (dims.0, dims.1, dims.2)
        self.axis = axis
        switch axis {
        case .axial: (count, height, width) = (dims.2, dims.1, dims.0)
        case .coronal: (count, height, width) = (dims.1, dims.2, dims.0)
        case .sagittal: (count, height, width) = (dims.0, dims.2, dims.1)
        }
    }

    /// The volume index of row r, column c of slice s.
    @inline(__always)
    public func index(slice s: Int, row r: Int, column c: Int) -> Int {
        let (x, y, z): (Int, Int, Int)
        switch axis {
        case .axial: (x, y, z) = (c, r, s)
        case .coronal: (x, y, z) = (c, s, dims.z - 1 - r)
        case .sagittal: (x, y, z) = (s, c, dims.z - 1 - r)
        }
        return (z * dims.y + y) * dims.x + x
    }

    public func slice<T>(_ volume: [T], _ s: Int) -> [T] {
        var out: [T] = []
        out.reserveCapacity(height * width)
        for r in 0..<height { for c in 0..<width { out.append(volume[index(slice: s, row: r, column: c)]) } }
        return out
    }

    public func insert<T>(_ slice: [T], at s: Int, into volume: inout [T]) {
        for r in 0..<height { for c in 0..<width { volume[index(slice: s, row: r, column: c)] = slice[r * width + c] } }
    }

    /// Every slice resized to size x size (bilinear images, nearest labels), concatenated.
    public func resizedSlices(_ values: [Float], labels: [UInt8], size: Int) -> ([Float], [UInt8]) {
        var images: [Float] = [], out: [UInt8] = []
        images.reserveCapacity(count * size * size)
        for s in 0..<count {
            images += Resample.bilinear(slice(values, s), height: height, width: width, outHeight: size, outWidth: size)
            if !labels.isEmpty {
                out += Resample.nearest(slice(labels, s), height: height, width: width, outHeight: size, outWidth: size)
            }
        }
        return (images, out)
    }

    /// The size a slice of `spacing` (row, column mm) takes at `target` mm per pixel.
    public func resampledSize(spacing: (Double, Double), target: Double) -> (height: Int, width: Int) {
        (max(1, Int((Double(height) * spacing.0 / target).rounded())), max(1, Int((Double(width) * spacing.1 / target).rounded())))
    }

    /// Every slice resampled to `target` mm per pixel, keeping its physical aspect ratio
    /// (bilinear images, nearest labels), concatenated, with the slices' new size.
    public func resampledSlices(_ values: [Float], labels: [UInt8], spacing: (Double, Double), target: Double)
        -> (images: [Float], labels: [UInt8], height: Int, width: Int)
    {
        let (h, w) = resampledSize(spacing: spacing, target: target)
        var images: [Float] = [], out: [UInt8] = []
        images.reserveCapacity(count * h * w)
        for s in 0..<count {
            images += Resample.bilinear(slice(values, s), height: height, width: width, outHeight: h, outWidth: w)
            if !labels.isEmpty { out += Resample.nearest(slice(labels, s), height: height, width: width, outHeight: h, outWidth: w) }
        }
        return (images, out, h, w)
    }
}
