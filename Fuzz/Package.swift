// swift-tools-version:6.1
import Foundation
import PackageDescription

// libFuzzer targets for the code that reads untrusted input. Built and run by `scripts/fuzz` with
// `-sanitize=fuzzer` (see docs/fuzzing.md); a plain `swift build` of the main package never builds them.

// A path dependency is named after its directory, which is wherever the repository was cloned.
let ambit = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .lastPathComponent.lowercased()

func fuzzTarget(_ name: String, _ products: [String], _ others: [Target.Dependency] = []) -> Target {
    .executableTarget(
        name: name,
        dependencies: ["FuzzSupport"] + products.map { .product(name: $0, package: ambit) } + others
    )
}

let package = Package(
    name: "AmbitFuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: ".."),
        // The same packages the main package uses, for the NIO and HPACK types the targets build inputs with.
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-http2.git", from: "1.46.0"),
    ],
    targets: [
        .target(name: "FuzzSupport"),
        fuzzTarget("FuzzManifest", ["AmbitConfig", "AmbitModel"]),
        fuzzTarget(
            "FuzzConnect",
            ["AmbitHBONE", "AmbitModel"],
            [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
            ]
        ),
        fuzzTarget(
            "FuzzWaypointHTTP",
            ["AmbitWaypoint", "AmbitConfig", "AmbitPolicy", "AmbitModel"],
            [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        fuzzTarget("FuzzCNI", ["AmbitCNI"]),
    ]
)
