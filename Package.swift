// swift-tools-version:6.2
// sd: a local-first virtual distributed file system. See ARCHITECTURE.md for the target graph.

import PackageDescription

let strictSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .treatAllWarnings(as: .error),
]

// BLAKE3's many-chunk kernel is compiled twice from one source file (Sources/SDBlake3Kernel*/Kernel8.swift):
// once for the baseline CPU and, on x86_64, once more for AVX2 (x86-64-v3), chosen at run time by a CPU
// check. Swift has no per-function target attributes, so the second copy is a target of its own.
var kernelTargets: [Target] = [
    .target(name: "SDBlake3Kernel", swiftSettings: strictSettings + [.unsafeFlags(["-Ounchecked"])])
]
var coreKernelDeps: [Target.Dependency] = ["SDSystem", "SDBlake3Kernel", "CSDPlatform"]
#if arch(x86_64)
    kernelTargets.append(
        .target(
            name: "SDBlake3KernelAVX2",
            swiftSettings: strictSettings + [.unsafeFlags(["-Ounchecked", "-target-cpu", "haswell"])]
        )
    )
    coreKernelDeps.append("SDBlake3KernelAVX2")
#endif

let package = Package(
    name: "sd",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "sd", targets: ["sd"]),
        .executable(name: "sdd", targets: ["sdd"]),
        .library(name: "SDCore", targets: ["SDCore"]),
        .library(name: "SDStore", targets: ["SDStore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-asn1", from: "1.7.4"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
    ],
    targets: kernelTargets + [
        // Layer 0
        .target(name: "CSDPlatform"),
        .target(name: "SDSystem", dependencies: ["CSDPlatform"], swiftSettings: strictSettings),
        .target(name: "SDCore", dependencies: coreKernelDeps, swiftSettings: strictSettings),
        // Layer 1
        .target(
            name: "SDStore",
            dependencies: [
                "SDCore", "SDSystem", .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
            ],
            exclude: ["Schema/README.md"],
            swiftSettings: strictSettings
        ),
        // Layer 2
        .target(
            name: "SDIndexer",
            dependencies: ["SDJobs", "SDStore", "SDCore", "SDSystem"],
            swiftSettings: strictSettings
        ),
        .target(name: "SDSearch", dependencies: ["SDStore", "SDCore"], swiftSettings: strictSettings),
        .target(name: "SDJobs", dependencies: ["SDStore", "SDCore"], swiftSettings: strictSettings),
        .target(
            name: "SDActions",
            dependencies: ["SDJobs", "SDStore", "SDCore", "SDSystem"],
            swiftSettings: strictSettings
        ),
        // Layer 3
        .target(
            name: "SDNet",
            dependencies: [
                "SDStore", "SDCore", "SDSystem",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CryptoExtras", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "SDSync",
            dependencies: ["SDNet", "SDStore", "SDCore", "SDSystem", "SDJobs", "SDActions"],
            swiftSettings: strictSettings
        ),
        // Layer 4
        .target(
            name: "SDAPI",
            dependencies: [
                "SDStore", "SDCore", "SDSystem", "SDIndexer", "SDActions", "SDJobs", "SDSearch", "SDNet", "SDSync",
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "SDDaemon",
            dependencies: [
                "SDAPI", "SDStore", "SDCore", "SDSystem", "SDJobs", "SDActions", "SDIndexer", "SDNet", "SDSync",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        // Executables
        .executableTarget(
            name: "sd",
            dependencies: [
                "SDCore", "SDSystem", "SDStore", "SDIndexer", "SDSearch", "SDJobs", "SDActions", "SDAPI", "SDNet",
                "SDSync",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "sdd",
            dependencies: [
                "SDDaemon", "SDAPI", "SDStore", "SDCore", "SDNet",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strictSettings
        ),
        // Tests
        .target(
            name: "SDTestSupport",
            dependencies: ["SDCore", "SDSystem"],
            path: "Tests/SDTestSupport",
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "SDCoreTests",
            dependencies: ["SDCore", "SDSystem", "SDTestSupport"],
            resources: [],
            swiftSettings: strictSettings
        ),
        .testTarget(name: "SDSystemTests", dependencies: ["SDSystem", "SDTestSupport"], swiftSettings: strictSettings),
        .testTarget(
            name: "SDStoreTests",
            dependencies: [
                "SDStore", "SDCore", "SDSystem", "SDTestSupport",
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "SDIndexerTests",
            dependencies: ["SDIndexer", "SDJobs", "SDStore", "SDCore", "SDSystem", "SDTestSupport"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "SDSearchTests",
            dependencies: [
                "SDSearch", "SDIndexer", "SDStore", "SDCore", "SDSystem", "SDTestSupport",
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "SDActionsTests",
            dependencies: [
                "SDActions", "SDJobs", "SDStore", "SDCore", "SDSystem", "SDIndexer", "SDTestSupport",
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "SDJobsTests",
            dependencies: ["SDJobs", "SDStore", "SDCore", "SDTestSupport"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "SDNetTests",
            dependencies: [
                "SDNet", "SDStore", "SDCore", "SDSystem", "SDTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "SDSyncTests",
            dependencies: [
                "SDSync", "SDNet", "SDStore", "SDCore", "SDSystem", "SDIndexer", "SDJobs", "SDTestSupport",
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "SDDaemonTests",
            dependencies: [
                "SDDaemon", "SDAPI", "SDStore", "SDCore", "SDSystem", "SDTestSupport",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "SDEndToEndTests",
            dependencies: ["SDCore", "SDSystem", "SDTestSupport"],
            swiftSettings: strictSettings
        ),
        // Real daemons against strangers and flooding peers (a paired device played in-process).
        .testTarget(
            name: "SDNetworkTests",
            dependencies: ["SDNet", "SDSync", "SDStore", "SDCore", "SDSystem", "SDTestSupport"],
            swiftSettings: strictSettings
        ),
    ],
    swiftLanguageModes: [.v6]
)
