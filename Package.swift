// swift-tools-version:6.0
import PackageDescription

/// MedMAML's library is one SwiftPM target per layer of the design, under Sources/Shared/, so
/// the compiler enforces the layering (docs/ARCHITECTURE.md draws the graph). Each system
/// library is linked by the one target that uses it; they come from Debian through
/// pkg-config (see `.ci/run` for the apt line).
let numerics = Target.Dependency.product(name: "RealModule", package: "swift-numerics")
let logging = Target.Dependency.product(name: "Logging", package: "swift-log")
let argumentParser = Target.Dependency.product(name: "ArgumentParser", package: "swift-argument-parser")

let package = Package(
    name: "MedMAML",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "medmaml-coordinator", targets: ["Coordinator"]),
        .executable(name: "medmaml-worker", targets: ["Worker"]),
        // What the fuzz package (Fuzz/) links: every reader of outside input.
        .library(name: "MedMAMLReaders", targets: ["Core", "Datasets", "Wire", "Training", "Cluster"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-numerics", from: "1.0.0"),
    ],
    targets: [
        // System libraries.
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        // Debian's oneDNN ships no pkg-config file; the module map links it directly.
        .systemLibrary(name: "CDNNL", providers: [.apt(["libdnnl-dev"])]),
        .systemLibrary(name: "CZeroMQ", pkgConfig: "libzmq", providers: [.apt(["libzmq3-dev"])]),
        .systemLibrary(name: "CSodium", pkgConfig: "libsodium", providers: [.apt(["libsodium-dev"])]),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),

        // The library, bottom up.
        .target(name: "Core", dependencies: ["CSodium", numerics], path: "Sources/Shared/Core"),
        .target(name: "Engine", dependencies: ["Core", "COpenBLAS", "CDNNL", numerics], path: "Sources/Shared/Engine"),
        .target(name: "Datasets", dependencies: ["Core", "CPNG", "CZlib", logging, numerics], path: "Sources/Shared/Datasets"),
        .target(name: "MetaLearning", dependencies: ["Core", "Engine", numerics], path: "Sources/Shared/MetaLearning"),
        .target(name: "Pretraining", dependencies: ["Core", "Datasets", logging, numerics], path: "Sources/Shared/Pretraining"),
        .target(name: "Evaluation", dependencies: ["Core", "Engine", "MetaLearning", "Datasets"], path: "Sources/Shared/Evaluation"),
        .target(name: "Training",
                dependencies: ["Core", "Engine", "MetaLearning", "Datasets", "Pretraining", "Evaluation", logging],
                path: "Sources/Shared/Training"),
        .target(name: "Wire", dependencies: ["Core"], path: "Sources/Shared/Wire"),
        .target(name: "Transport", dependencies: ["CZeroMQ", logging], path: "Sources/Shared/Transport"),
        .target(name: "Cluster",
                dependencies: ["Core", "Engine", "MetaLearning", "Datasets", "Pretraining", "Training", "Wire", "Transport", logging],
                path: "Sources/Shared/Cluster"),
        .target(name: "Benchmarks",
                dependencies: ["Core", "Engine", "MetaLearning", "Datasets", "Training", "Wire", "Transport", "Cluster", logging],
                path: "Sources/Shared/Benchmarks"),

        // The executables.
        .executableTarget(
            name: "Coordinator",
            dependencies: ["Core", "Engine", "MetaLearning", "Datasets", "Pretraining", "Evaluation", "Training",
                           "Transport", "Cluster", "Benchmarks", argumentParser, logging]),
        .executableTarget(name: "Worker", dependencies: ["Core", "Engine", "Transport", "Cluster", argumentParser, logging]),

        // Tests.
        .target(name: "TestSupport",
                dependencies: ["Core", "Engine", "MetaLearning", "Datasets", "Training", "Wire", "Transport", "Cluster", logging],
                path: "Tests/TestSupport"),
        .testTarget(
            name: "IntegrationTests",
            dependencies: ["Core", "Engine", "MetaLearning", "Datasets", "Training", "Wire", "Transport", "Cluster", "TestSupport",
                           logging]),
        .testTarget(
            name: "SharedTests",
            dependencies: ["Core", "Engine", "MetaLearning", "Datasets", "Pretraining", "Evaluation", "Training", "Wire",
                           "Transport", "Cluster", "TestSupport", logging],
            exclude: ["Fixtures"]),
    ]
)
