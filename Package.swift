// swift-tools-version: 6.1
// VirtqueueBench: virtio 1.2 split and packed rings, doorbells, vDPA-style mediation,
// and the benchmark engine that measures them. Layers (DESIGN.md), bottom up:
// C shims → VirtioMemory → Virtqueue → Doorbell → Mediation → VQBenchKit → vqbench.
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
]

let package = Package(
    name: "VirtqueueBench",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "VirtioMemory", targets: ["VirtioMemory"]),
        .library(name: "Virtqueue", targets: ["Virtqueue"]),
        .library(name: "VQBenchKit", targets: ["VQBenchKit"]),
        .library(name: "Doorbell", targets: ["Doorbell"]),
        .library(name: "Mediation", targets: ["Mediation"]),
        .library(name: "VhostUser", targets: ["VhostUser"]),
        .executable(name: "vqbench", targets: ["vqbench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-atomics.git", from: "1.3.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/x-sheep/swift-property-based.git", from: "2.0.1"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        // Child processes of `vqbench gate --against` (building and running a base revision).
        .package(url: "https://github.com/swiftlang/swift-subprocess.git", from: "1.0.2"),
        .package(url: "https://github.com/apple/swift-system.git", from: "1.8.1"),
    ],
    targets: [
        // Thin C shims (STYLE.md: C stays thin).
        .systemLibrary(
            name: "CUring",
            pkgConfig: "liburing",
            providers: [.apt(["liburing-dev"])]
        ),
        .systemLibrary(
            name: "CHugetlbfs",
            providers: [.apt(["libhugetlbfs-dev"])]
        ),
        .target(name: "CPlatform"),

        .target(
            name: "VirtioMemory",
            dependencies: [
                "CPlatform", "CHugetlbfs",
                .product(name: "Atomics", package: "swift-atomics"),
            ],
            swiftSettings: swiftSettings
        ),
        // Notification transports behind one protocol (issue 4).
        .target(
            name: "Doorbell",
            dependencies: [
                "CPlatform", "CUring",
                .product(name: "Atomics", package: "swift-atomics"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "Virtqueue",
            dependencies: [
                "VirtioMemory",
                .product(name: "Atomics", package: "swift-atomics"),
            ],
            swiftSettings: swiftSettings
        ),
        // The vhost-user wire protocol: messages, their checks, a Unix-socket connection with
        // descriptors as SCM_RIGHTS (issue 15).
        .target(
            name: "VhostUser",
            dependencies: ["CPlatform"],
            swiftSettings: swiftSettings
        ),
        // vDPA config ops, the bus with class-id binding, lifecycles, vendor parents (issue 5).
        .target(
            name: "Mediation",
            dependencies: [
                "VirtioMemory", "Virtqueue", "Doorbell", "CPlatform", "VhostUser",
                .product(name: "Atomics", package: "swift-atomics"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "VQBenchKit",
            dependencies: [
                "Virtqueue", "VirtioMemory", "Doorbell", "Mediation", "CPlatform",
                .product(name: "Atomics", package: "swift-atomics"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "vqbench",
            dependencies: [
                "VQBenchKit", "Virtqueue", "VirtioMemory", "Doorbell", "CUring", "Mediation", "VhostUser", "CPlatform",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: swiftSettings
        ),

        // Test-only: Linux's <linux/virtio_ring.h>, the independent reference for layouts.
        .target(name: "CVirtioUAPI", path: "Tests/CVirtioUAPI"),
        .testTarget(
            name: "VirtqueueTests",
            dependencies: [
                "Virtqueue", "VirtioMemory", "Doorbell", "CVirtioUAPI", "CPlatform",
                .product(name: "Atomics", package: "swift-atomics"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "VQBenchKitTests",
            dependencies: ["VQBenchKit", "Virtqueue", "VirtioMemory", "Doorbell", "CPlatform"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "MediationTests",
            dependencies: [
                "Mediation", "Virtqueue", "VirtioMemory", "Doorbell", "CPlatform", "VhostUser",
                .product(name: "Atomics", package: "swift-atomics"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "VirtioMemoryTests",
            dependencies: [
                "VirtioMemory", "CUring", "CPlatform",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "VhostUserTests",
            dependencies: ["VhostUser", "CPlatform"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "DoorbellTests",
            dependencies: [
                "Doorbell", "CUring", "CPlatform",
                .product(name: "Atomics", package: "swift-atomics"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
