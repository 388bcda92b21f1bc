import CFuzzer
import Datasets
import Foundation

// Input: a PNG file for libpng through `PNG.decode`.
var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
let status = LLVMFuzzerRunDriver(&argc, &argv) { input, count in
    guard let data = input else { return 0 }
    _ = try? PNG.decode(Data(bytes: data, count: count), path: "fuzz")
    return 0
}
exit(status)
