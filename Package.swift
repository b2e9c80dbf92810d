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
        .library(name: "AmbitModel", targets: ["AmbitModel"]),
        .library(name: "AmbitTelemetry", targets: ["AmbitTelemetry"]),
        .library(name: "AmbitPolicy", targets: ["AmbitPolicy"]),
        .library(name: "AmbitIdentity", targets: ["AmbitIdentity"]),
        .library(name: "AmbitConfig", targets: ["AmbitConfig"]),
        .library(name: "AmbitRelay", targets: ["AmbitRelay"]),
        .library(name: "AmbitHBONE", targets: ["AmbitHBONE"]),
        .library(name: "AmbitCapture", targets: ["AmbitCapture"]),
        .library(name: "AmbitNode", targets: ["AmbitNode"]),
        .library(name: "AmbitWaypoint", targets: ["AmbitWaypoint"]),
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

        // Metrics in Istio's names, the access-log schema, response flags, the JSON log handler.
        .target(
            name: "AmbitTelemetry",
            dependencies: [
                "AmbitModel",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strictSettings
        ),

        // L4 and L7 authorization with Istio's semantics: pure decisions over model values. No NIO.
        .target(
            name: "AmbitPolicy",
            dependencies: [
                "AmbitModel",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),

        // SPIFFE certificates: the local CA, the certificate manager (rotation), peer verification. No NIO.
        .target(
            name: "AmbitIdentity",
            dependencies: [
                "AmbitModel",
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strictSettings
        ),

        // The configuration store and its sources: manifest files, the Kubernetes API (list/watch).
        .target(
            name: "AmbitConfig",
            dependencies: [
                "AmbitModel",
                "AmbitPolicy",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: strictSettings
        ),

        // Byte relays between sockets and streams (backpressure, half-close, reset), and dialers.
        .target(
            name: "AmbitRelay",
            dependencies: [
                "AmbitModel",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),

        // HBONE: mutual TLS, the HTTP/2 CONNECT server and the pooled client.
        .target(
            name: "AmbitHBONE",
            dependencies: [
                "AmbitModel",
                "AmbitIdentity",
                "AmbitRelay",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "NIOExtras", package: "swift-nio-extras"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),

        // What every Ambit daemon has: metrics, readiness and admin ports, termination signals.
        .target(
            name: "AmbitProcess",
            dependencies: [
                "AmbitTelemetry",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
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

        // Kernel-facing capture: network namespaces, nftables (libnftnl), eBPF (libbpf), capture
        // sockets and the original destination of a captured connection.
        .target(
            name: "AmbitCapture",
            dependencies: [
                "AmbitModel",
                "CLibBPF",
                "CLibNFTNL",
                "CAmbitShim",
                .product(name: "NIOCore", package: "swift-nio"),
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
                "AmbitCapture",
                "AmbitConfig",
                "AmbitHBONE",
                "AmbitIdentity",
                "AmbitModel",
                "AmbitPolicy",
                "AmbitProcess",
                "AmbitRelay",
                "AmbitTelemetry",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        // What the executables share on their command lines: logging and configuration-source options.
        .target(
            name: "AmbitCLI",
            dependencies: [
                "AmbitConfig",
                "AmbitProcess",
                "AmbitTelemetry",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "ambit-node",
            dependencies: [
                "AmbitCLI",
                "AmbitConfig",
                "AmbitModel",
                "AmbitNode",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        // The waypoint: terminates HBONE, applies L7 policy and HTTPRoutes, forwards over HBONE.
        .target(
            name: "AmbitWaypoint",
            dependencies: [
                "AmbitConfig",
                "AmbitHBONE",
                "AmbitIdentity",
                "AmbitModel",
                "AmbitPolicy",
                "AmbitProcess",
                "AmbitRelay",
                "AmbitTelemetry",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "ambit-waypoint",
            dependencies: [
                "AmbitCLI",
                "AmbitConfig",
                "AmbitModel",
                "AmbitWaypoint",
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
                "AmbitCapture",
                "AmbitConfig",
                "AmbitModel",
                "AmbitWaypoint",
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
                "AmbitModel",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "ambitctl",
            dependencies: [
                "AmbitCLI",
                "AmbitConfig",
                "AmbitIdentity",
                "AmbitLab",
                "AmbitModel",
                "AmbitPolicy",
                "AmbitTelemetry",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "X509", package: "swift-certificates"),
            ],
            swiftSettings: strictSettings
        ),

        // Helpers shared by the test targets: an in-code CA, manifest builders, process runners.
        .target(
            name: "AmbitTestSupport",
            dependencies: [
                "AmbitIdentity",
                "AmbitModel",
                "AmbitRelay",
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
            name: "AmbitTelemetryTests",
            dependencies: [
                "AmbitModel", "AmbitTelemetry", "AmbitTestSupport", .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "AmbitPolicyTests",
            dependencies: [
                "AmbitConfig", "AmbitModel", "AmbitPolicy", "AmbitTelemetry", "AmbitTestSupport",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "AmbitIdentityTests",
            dependencies: [
                "AmbitIdentity",
                "AmbitModel",
                "AmbitTelemetry",
                "AmbitTestSupport",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "X509", package: "swift-certificates"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "AmbitConfigTests",
            dependencies: [
                "AmbitConfig",
                "AmbitModel",
                "AmbitTestSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "AmbitRelayTests",
            dependencies: [
                "AmbitModel",
                "AmbitRelay",
                "AmbitTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "AmbitHBONETests",
            dependencies: [
                "AmbitHBONE",
                "AmbitIdentity",
                "AmbitModel",
                "AmbitRelay",
                "AmbitTelemetry",
                "AmbitTestSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "X509", package: "swift-certificates"),
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
            dependencies: [
                "AmbitCapture",
                "AmbitConfig",
                "AmbitModel",
                "AmbitNode",
                "AmbitRelay",
                "AmbitTelemetry",
                "AmbitTestSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "AmbitWaypointTests",
            dependencies: [
                "AmbitConfig",
                "AmbitModel",
                "AmbitTelemetry",
                "AmbitTestSupport",
                "AmbitWaypoint",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "AmbitLabTests",
            dependencies: ["AmbitModel", "AmbitLab", "AmbitTestSupport"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "AmbitctlTests",
            dependencies: [
                "AmbitTestSupport", .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
    ]
)
