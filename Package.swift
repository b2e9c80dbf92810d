// swift-tools-version:6.1
import PackageDescription

let strictSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "ambit",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "ambitctl", targets: ["ambitctl"]),
        .executable(name: "ambit-node", targets: ["ambit-node"]),
        .executable(name: "ambit-cni", targets: ["ambit-cni"]),
        .executable(name: "ambit-waypoint", targets: ["ambit-waypoint"]),
        .executable(name: "ambit-sidecar", targets: ["ambit-sidecar"]),
        .library(name: "AmbitNode", targets: ["AmbitNode"]),
        .library(name: "AmbitWaypoint", targets: ["AmbitWaypoint"]),
        .library(name: "AmbitModel", targets: ["AmbitModel"]),
        .library(name: "AmbitCore", targets: ["AmbitCore"]),
        .library(name: "AmbitCapture", targets: ["AmbitCapture"]),
        // Test helpers (in-code CA, loopback servers), also used by the benchmarks.
        .library(name: "AmbitTestSupport", targets: ["AmbitTestSupport"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio-http2.git", from: "1.46.0"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
    ],
    targets: [
        // C system libraries used by the capture backends.
        .systemLibrary(
            name: "CLibBPF",
            pkgConfig: "libbpf",
            providers: [.apt(["libbpf-dev"])]
        ),
        .systemLibrary(
            name: "CLibNFTNL",
            pkgConfig: "libnftnl",
            providers: [.apt(["libnftnl-dev", "libmnl-dev"])]
        ),
        // What Swift cannot import: setns, SCM_RIGHTS (CMSG_*), SO_PEERCRED, accept4, gettid.
        .target(name: "CAmbitShim"),

        // Plain value types: identities, addresses, Kubernetes-shaped objects, policies. No NIO.
        .target(
            name: "AmbitModel",
            swiftSettings: strictSettings
        ),

        // State store, identity and certificates, authorization, telemetry (later: HBONE, proxy).
        .target(
            name: "AmbitCore",
            dependencies: [
                "AmbitModel",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOExtras", package: "swift-nio-extras"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: strictSettings
        ),

        // The CNI plugin's logic and its protocol to the node agent. Links no kernel libraries, so
        // the plugin binary (copied onto every node) runs on any Linux host.
        .target(
            name: "AmbitCNI",
            dependencies: ["CAmbitShim"],
            swiftSettings: strictSettings
        ),

        // Kernel-facing capture: network namespaces, nftables (libnftnl), eBPF (libbpf).
        .target(
            name: "AmbitCapture",
            dependencies: [
                "AmbitModel",
                "CLibBPF",
                "CLibNFTNL",
                "CAmbitShim",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings,
            // Compiles bpf/*.c with clang -target bpf and embeds the object (see bpf/README.md).
            plugins: ["BPFObjectPlugin"]
        ),
        .plugin(name: "BPFObjectPlugin", capability: .buildTool()),

        // The node agent: in-pod capture, outbound/inbound proxying, CNI server, operational ports.
        .target(
            name: "AmbitNode",
            dependencies: [
                "AmbitCNI",
                "AmbitModel",
                "AmbitCore",
                "AmbitCapture",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        // What the executables share on their command lines: logging and configuration-source options.
        .target(
            name: "AmbitCLI",
            dependencies: [
                "AmbitCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "ambit-node",
            dependencies: [
                "AmbitCLI",
                "AmbitNode",
                "AmbitCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        // The waypoint: terminates HBONE, applies L7 policy and HTTPRoutes, forwards over HBONE.
        .target(
            name: "AmbitWaypoint",
            dependencies: [
                "AmbitModel",
                "AmbitCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "ambit-waypoint",
            dependencies: [
                "AmbitCLI",
                "AmbitWaypoint",
                "AmbitCore",
                "AmbitModel",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        // The waypoint's L7 engine as one pod's sidecar, for the ambient-versus-sidecar benchmark.
        .executableTarget(
            name: "ambit-sidecar",
            dependencies: [
                "AmbitCLI",
                "AmbitWaypoint",
                "AmbitCore",
                "AmbitCapture",
                "AmbitModel",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        // The chained CNI plugin and its installer: small and quick to start (no NIO, no kernel libraries).
        .executableTarget(
            name: "ambit-cni",
            dependencies: ["AmbitCNI", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: strictSettings
        ),

        // The local lab: nodes and pods as network namespaces, CNI reference plugins, one agent per node.
        .target(
            name: "AmbitLab",
            dependencies: [
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "ambitctl",
            dependencies: [
                "AmbitCLI",
                "AmbitLab",
                "AmbitModel",
                "AmbitCore",
                "AmbitCapture",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),

        // Helpers shared by the test targets: an in-code CA, manifest builders, process runners.
        .target(
            name: "AmbitTestSupport",
            dependencies: [
                "AmbitModel",
                "AmbitCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strictSettings
        ),

        .testTarget(
            name: "AmbitModelTests",
            dependencies: ["AmbitModel"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "AmbitCoreTests",
            dependencies: [
                "AmbitCore",
                "AmbitModel",
                "AmbitTestSupport",
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "AmbitCNITests",
            dependencies: ["AmbitCNI", "AmbitCapture", "AmbitTestSupport"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "AmbitCaptureTests",
            dependencies: ["AmbitCapture", "AmbitModel"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "AmbitNodeTests",
            dependencies: ["AmbitNode", "AmbitCore", "AmbitModel", "AmbitTestSupport"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "AmbitWaypointTests",
            dependencies: ["AmbitWaypoint", "AmbitCore", "AmbitModel", "AmbitTestSupport"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "AmbitLabTests",
            dependencies: ["AmbitLab", "AmbitTestSupport"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "AmbitctlTests",
            dependencies: [
                "AmbitTestSupport", "AmbitModel", .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
    ]
)
