import CFuzzer
import Datasets
import Foundation

// Input: a NIfTI-1 file, gzip-compressed or not, as `NIfTIVolume.read` would see it (with a
// smaller decompression limit, so the fuzzer explores rather than inflates).
var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
let status = LLVMFuzzerRunDriver(&argc, &argv) { input, count in
    guard let data = input else { return 0 }
    var file = Data(bytes: data, count: count)
    if Gzip.isGzip(file) {
        guard let inflated = try? Gzip.decompress(file, limit: 1 << 24) else { return 0 }
        file = inflated
    }
    _ = try? NIfTIVolume.decode(file, path: "fuzz")
    return 0
}
exit(status)
