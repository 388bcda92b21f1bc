// swift-tools-version:6.0
import PackageDescription

/// MedMAML's library is one SwiftPM target per layer of the design, under Sources/Shared/, so
/// the compiler enforces the layering (docs/ARCHITECTURE.md draws the graph). Each system
/// library is linked by the one target that uses it; they come from Debian through
/// pkg-config (see `.ci/run` for the apt line).
let numerics = Target.Dependency.product(name: "RealModule", package: "swift-numerics")
let logging = Target.Dependency.product(name: "Logging", package: "swift-log")
let argumentParser = Target.Dependency.product(name: "ArgumentParser", package: "swift-argument-parser")
let metrics = Target.Dependency.product(name: "Metrics", package: "swift-metrics")

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
        // Metrics: the library records with swift-metrics (no cost until an executable
        // bootstraps a backend); the executables export them with swift-prometheus over
        // FlyingFox's HTTP server. Run files are YAML (Yams).
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swhitty/FlyingFox", .upToNextMinor(from: "0.27.1")),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
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
        .target(name: "Evaluation", dependencies: ["Core", "Engine", "MetaLearning", "Datasets", numerics], path: "Sources/Shared/Evaluation"),
        .target(name: "Training",
                dependencies: ["Core", "Engine", "MetaLearning", "Datasets", "Pretraining", "Evaluation", logging, metrics],
                path: "Sources/Shared/Training"),
        .target(name: "Wire", dependencies: ["Core"], path: "Sources/Shared/Wire"),
        .target(name: "Transport", dependencies: ["CZeroMQ", logging], path: "Sources/Shared/Transport"),
        .target(name: "Cluster",
                dependencies: ["Core", "Engine", "MetaLearning", "Datasets", "Pretraining", "Training", "Wire", "Transport", logging,
                               metrics],
                path: "Sources/Shared/Cluster"),
        .target(name: "Inference",
                dependencies: ["Core", "Engine", "MetaLearning", "Datasets", "Evaluation", "Training"],
                path: "Sources/Shared/Inference"),
        .target(name: "Study",
                dependencies: ["Core", "Engine", "MetaLearning", "Datasets", "Pretraining", "Evaluation", "Training", "Cluster", logging],
                path: "Sources/Shared/Study"),
        .target(name: "Benchmarks",
                dependencies: ["Core", "Engine", "MetaLearning", "Datasets", "Training", "Wire", "Transport", "Cluster", logging],
                path: "Sources/Shared/Benchmarks"),

        // What the executables share as services: the Prometheus endpoint and run files.
        .target(name: "Service",
                dependencies: [argumentParser, logging, metrics,
                               .product(name: "Prometheus", package: "swift-prometheus"),
                               .product(name: "FlyingFox", package: "FlyingFox"),
                               .product(name: "Yams", package: "Yams")],
                path: "Sources/Shared/Service"),

        // The option groups the executables' commands share (one group per concern, one set of
        // defaults, one TrainingConfig builder) and the helpers every command ends with.
        .target(name: "CommandOptions",
                dependencies: ["Core", "Engine", "MetaLearning", "Datasets", "Evaluation", "Training", "Wire", "Cluster", "Study",
                               "Service", argumentParser, logging],
                path: "Sources/Shared/CommandOptions"),

        // The executables: commands only (parse, call the library, print).
        .executableTarget(
            name: "Coordinator",
            dependencies: ["Core", "Engine", "MetaLearning", "Datasets", "Pretraining", "Evaluation", "Training",
                           "Wire", "Transport", "Cluster", "Inference", "Study", "Benchmarks", "Service", "CommandOptions",
                           argumentParser, logging]),
        .executableTarget(name: "Worker",
                          dependencies: ["Core", "Engine", "Transport", "Cluster", "Service", "CommandOptions", argumentParser, logging]),

        // Tests.
        .target(name: "TestSupport",
                dependencies: ["Core", "Engine", "MetaLearning", "Datasets", "Training", "Wire", "Transport", "Cluster", logging],
                path: "Tests/TestSupport"),
        .testTarget(
            name: "IntegrationTests",
            dependencies: ["Core", "Engine", "MetaLearning", "Datasets", "Evaluation", "Training", "Wire", "Transport", "Cluster",
                           "Inference", "Study", "TestSupport", "Service", logging]),
        .testTarget(
            name: "SharedTests",
            dependencies: ["Core", "Engine", "MetaLearning", "Datasets", "Pretraining", "Evaluation", "Training", "Wire",
                           "Transport", "Cluster", "Inference", "Study", "Service", "TestSupport", logging, numerics],
            exclude: ["Fixtures"]),
    ]
)
