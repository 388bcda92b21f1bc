/// Unfolding of a zero-padded, stride-1 square convolution window into columns.
///
/// For one image `x` [C, H, W] and a kernel of size k with padding p = k/2, column row
/// `(c * k + i) * k + j` holds `x[c, h + i - p, w + j - p]` at column `h * W + w` (zero
/// outside the image), so that a convolution is `W[Cout, C*k*k] x col[C*k*k, H*W]`.
/// `rowStride` lets the caller place the columns inside a larger matrix.
@inline(__always)
func im2col<S: EngineScalar>(
    _ x: UnsafePointer<S>, channels: Int, height: Int, width: Int, kernel: Int,
    into col: UnsafeMutablePointer<S>, rowStride: Int
) {
    let pad = kernel / 2
    let plane = height * width
    var row = 0
    for c in 0..<channels {
        let xc = x + c * plane
        for i in 0..<kernel {
            for j in 0..<kernel {
                let dst = col + row * rowStride
                let dx = j - pad
                let wStart = max(0, -dx)
                let wEnd = min(width, width - dx)
                for h in 0..<height {
                    let hs = h + i - pad
                    let d = dst + h * width
                    if hs < 0 || hs >= height {
                        d.update(repeating: 0, count: width)
                        continue
                    }
                    if wStart > 0 { d.update(repeating: 0, count: wStart) }
                    if wEnd < width { (d + wEnd).update(repeating: 0, count: width - wEnd) }
                    if wEnd > wStart {
                        (d + wStart).update(from: xc + hs * width + wStart + dx, count: wEnd - wStart)
                    }
                }
                row += 1
            }
        }
    }
}
