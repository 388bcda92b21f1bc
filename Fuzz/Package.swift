// swift-tools-version:6.0
import PackageDescription

/// libFuzzer targets for every reader of outside input: the wire decoder (and the run
/// specification a worker rebuilds from WELCOME), NIfTI (with gzip), PNG and safetensors.
/// Built with `-sanitize=fuzzer,address` by `Fuzz/run.sh`, never by the main package.
let readers = Target.Dependency.product(name: "MedMAMLReaders", package: "MedMAML")
/// Linked with lld: gold fails on AddressSanitizer's debug information here.
let lld: [LinkerSetting] = [.unsafeFlags(["-use-ld=lld"])]

let package = Package(
    name: "MedMAMLFuzz",
    dependencies: [.package(name: "MedMAML", path: "..")],
    targets: [
        // libFuzzer's driver, declared (the library itself comes with -sanitize=fuzzer).
        .systemLibrary(name: "CFuzzer"),
        .executableTarget(name: "FuzzWire", dependencies: [readers, "CFuzzer"], linkerSettings: lld),
        .executableTarget(name: "FuzzNIfTI", dependencies: [readers, "CFuzzer"], linkerSettings: lld),
        .executableTarget(name: "FuzzPNG", dependencies: [readers, "CFuzzer"], linkerSettings: lld),
        .executableTarget(name: "FuzzSafetensors", dependencies: [readers, "CFuzzer"], linkerSettings: lld),
    ]
)
