/// Scratch memory shared by all layers of one network (one per thread).
public final class Workspace<Scalar: EngineScalar> {
    /// Unfolded columns; room for two images' columns (primal and tangent).
    public let columns: Storage<Scalar>
    /// Column-space cotangents; room for two as well.
    public let columnCotangents: Storage<Scalar>
    /// Small matrices built per call (stacked weights).
    public let small: Storage<Scalar>
    /// Transposed weight gradients and their tangents, accumulated over a batch.
    public let weightGradients: Storage<Scalar>

    /// Staging slots, scratchpad and stream of oneDNN's convolution primitives (made on first use).
    lazy var primitives = PrimitiveScratch()

    init(columnCount: Int, smallCount: Int) {
        columns = Storage(count: 2 * columnCount)
        columnCotangents = Storage(count: 2 * columnCount)
        small = Storage(count: smallCount)
        weightGradients = Storage(count: smallCount)
    }
}
