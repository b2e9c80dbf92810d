public import Foundation

/// Where the package and its built executables are, for tests that run them as a user would.
public enum TestBinaries {
    /// The package root (this file is `Sources/AmbitTestSupport/TestBinaries.swift`).
    public static var packageRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
    }

    /// The built executable `name`: `$AMBIT_<NAME>` if set (`AMBIT_AMBITCTL`, `AMBIT_AMBIT_NODE`), else the
    /// one next to (or above) the test bundle, i.e. `.build/debug/<name>` after `swift build`.
    public static func path(_ name: String) -> String {
        let variable = "AMBIT_" + name.uppercased().replacingOccurrences(of: "-", with: "_")
        if let path = ProcessInfo.processInfo.environment[variable] { return path }
        var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        while directory.path != "/" {
            let candidate = directory.appendingPathComponent(name).path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            directory.deleteLastPathComponent()
        }
        return packageRoot.appendingPathComponent(".build/debug/\(name)").path
    }
}
