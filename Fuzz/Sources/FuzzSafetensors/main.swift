import CFuzzer
import Core
import Foundation

// Input: a safetensors file for `Safetensors.decode`.
var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
let status = LLVMFuzzerRunDriver(&argc, &argv) { input, count in
    guard let data = input else { return 0 }
    _ = try? Safetensors.decode(Data(bytes: data, count: count), path: "fuzz")
    return 0
}
exit(status)
