/// One few-shot segmentation task sample: K labelled support images to adapt on and Q
/// labelled query images to score the adaptation, all of one shape, NCHW Float32, masks
/// binary {0, 1} with one channel.
public struct TaskSample: Sendable, Equatable {
    /// Per-image shape of the images (masks have one channel of the same size).
    public var shape: FeatureShape
    public var supportImages: [Float]
    public var supportMasks: [Float]
    public var queryImages: [Float]
    public var queryMasks: [Float]
    /// Pixel size (row, column) in mm when known and the same for every image, else nil.
    public var spacing: [Double]? = nil

    public var supportCount: Int { supportImages.count / shape.count }
    public var queryCount: Int { queryImages.count / shape.count }

    public init(shape: FeatureShape, supportImages: [Float], supportMasks: [Float],
                queryImages: [Float], queryMasks: [Float]) {
        self.shape = shape
        self.supportImages = supportImages
        self.supportMasks = supportMasks
        self.queryImages = queryImages
        self.queryMasks = queryMasks
    }

    /// Checks sizes, binary masks and finite values; data from files passes through here.
    public func validate() throws(TaskError) {
        let k = supportImages.count / max(shape.count, 1)
        let q = queryImages.count / max(shape.count, 1)
        guard shape.count > 0, k > 0, q > 0,
              supportImages.count == k * shape.count, queryImages.count == q * shape.count,
              supportMasks.count == k * shape.plane, queryMasks.count == q * shape.plane
        else { throw .invalid("support/query images and masks do not match shape \(shape)") }
        guard supportImages.allSatisfy(\.isFinite), queryImages.allSatisfy(\.isFinite) else {
            throw .invalid("images contain non-finite values")
        }
        guard supportMasks.allSatisfy({ $0 == 0 || $0 == 1 }), queryMasks.allSatisfy({ $0 == 0 || $0 == 1 }) else {
            throw .invalid("masks must be binary (0 or 1)")
        }
    }
}
