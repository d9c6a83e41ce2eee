// swift-tools-version: 6.1
// package-benchmark suites for VirtqueueBench, kept in their own package so the main
// build and `swift test` do not compile the benchmark harness. Run from this folder:
//   swift package benchmark            (all suites)
//   swift package benchmark --filter split
import Foundation
import PackageDescription

// A path dependency is named after its folder, which is whatever the clone was called.
let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .lastPathComponent.lowercased()

let package = Package(
    name: "VirtqueueBenchBenchmarks",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark.git", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "RingBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "VQBenchKit", package: root),
                .product(name: "Virtqueue", package: root),
                .product(name: "VirtioMemory", package: root),
            ],
            path: "Benchmarks/RingBenchmarks",
            swiftSettings: [.swiftLanguageMode(.v6)],
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
