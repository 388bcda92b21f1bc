// swift-tools-version:6.0
import PackageDescription

/// System libraries come from Debian through pkg-config; see `.ci/run` for the apt line.
let package = Package(
    name: "MedMAML",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "medmaml-coordinator", targets: ["Coordinator"]),
        .executable(name: "medmaml-worker", targets: ["Worker"]),
        .library(name: "Shared", targets: ["Shared"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-numerics", from: "1.0.0"),
    ],
    targets: [
        .systemLibrary(
            name: "COpenBLAS", pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]),
        // Debian's oneDNN ships no pkg-config file; the module map links it directly.
        .systemLibrary(
            name: "CDNNL",
            providers: [.apt(["libdnnl-dev"])]),
        .systemLibrary(
            name: "CZeroMQ", pkgConfig: "libzmq",
            providers: [.apt(["libzmq3-dev"])]),
        .systemLibrary(
            name: "CSodium", pkgConfig: "libsodium",
            providers: [.apt(["libsodium-dev"])]),
        .systemLibrary(
            name: "CPNG", pkgConfig: "libpng",
            providers: [.apt(["libpng-dev"])]),
        .systemLibrary(
            name: "CZlib", pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]),
        .target(
            name: "Shared",
            dependencies: [
                "COpenBLAS", "CDNNL", "CZeroMQ", "CSodium", "CPNG", "CZlib",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "RealModule", package: "swift-numerics"),
            ]),
        .executableTarget(
            name: "Coordinator",
            dependencies: [
                "Shared",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .executableTarget(
            name: "Worker",
            dependencies: [
                "Shared",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .target(
            name: "TestSupport",
            dependencies: ["Shared"],
            path: "Tests/TestSupport"),
        .testTarget(
            name: "IntegrationTests",
            dependencies: ["Shared", "TestSupport"]),
        .testTarget(
            name: "SharedTests",
            dependencies: ["Shared", "TestSupport"],
            exclude: ["Fixtures"]),
    ]
)
