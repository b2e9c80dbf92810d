// swift-tools-version:6.1
// Micro-benchmarks of Ambit's hot paths, run with ordo-one/benchmark in release mode:
//   cd Benchmarks && swift package --disable-sandbox benchmark
// A separate package so the main build and the test suite do not pay for the benchmark tooling.
import Foundation
import PackageDescription

// SwiftPM names a path dependency after its directory, which differs between clones.
let ambit = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().lastPathComponent

let package = Package(
    name: "AmbitBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark.git", from: "1.38.1", traits: ["MallocInterposer"]),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-http2.git", from: "1.46.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
    ],
    targets: [
        .executableTarget(
            name: "PolicyEvaluation",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "AmbitPolicy", package: ambit),
                .product(name: "AmbitModel", package: ambit),
            ],
            path: "Benchmarks/PolicyEvaluation",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "ConfigLookup",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "AmbitConfig", package: ambit),
                .product(name: "AmbitModel", package: ambit),
            ],
            path: "Benchmarks/ConfigLookup",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "DataPath",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "AmbitHBONE", package: ambit),
                .product(name: "AmbitRelay", package: ambit),
                .product(name: "AmbitModel", package: ambit),
                .product(name: "AmbitTestSupport", package: ambit),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "AmbitTelemetry", package: ambit),
            ],
            path: "Benchmarks/DataPath",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "HBONEBench",
            dependencies: [
                .product(name: "AmbitHBONE", package: ambit),
                .product(name: "AmbitRelay", package: ambit),
                .product(name: "AmbitModel", package: ambit),
                .product(name: "AmbitTestSupport", package: ambit),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "AmbitIdentity", package: ambit),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                // BoringSSL itself, for `HBONEBench tls-primitives` and `tls-backends`.
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                "CSystemOpenSSL",
            ],
            path: "Benchmarks/HBONEBench"
        ),
        // The system's OpenSSL 3 (libssl-dev), for `HBONEBench tls-backends` only.
        .target(
            name: "CSystemOpenSSL",
            path: "Benchmarks/CSystemOpenSSL",
            linkerSettings: [.linkedLibrary("ssl"), .linkedLibrary("crypto")]
        ),
        // The mesh benchmark harness's HTTP server and constant-rate load generator (Benchmarks/mesh/run).
        .executableTarget(
            name: "MeshLoad",
            dependencies: [
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            path: "Benchmarks/MeshLoad"
        ),
        .executableTarget(
            name: "Profile",
            dependencies: [
                .product(name: "AmbitPolicy", package: ambit),
                .product(name: "AmbitModel", package: ambit),
            ],
            path: "Benchmarks/Profile"
        ),
    ]
)
