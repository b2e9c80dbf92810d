import AmbitTestSupport
import Foundation

/// Runs the built `ambitctl` (as a user would) for the lab tests.
///
/// Which binary: `$AMBIT_LAB_AMBITCTL` if set, else the `ambitctl` next to (or above) the test bundle, i.e.
/// `.build/debug/ambitctl` after `swift build`. To run commands in-process instead, call
/// `LabCommand.parseAsRoot(arguments)` and `run()` on the result (output then goes to the test's stdout).
enum LabCLI {
    typealias Result = ProcessRunner.Result

    static var packageRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
    }

    static var ambitctl: String {
        if let path = ProcessInfo.processInfo.environment["AMBIT_LAB_AMBITCTL"] { return path }
        var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        while directory.path != "/" {
            let candidate = directory.appendingPathComponent("ambitctl").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            directory.deleteLastPathComponent()
        }
        return packageRoot.appendingPathComponent(".build/debug/ambitctl").path
    }

    /// Runs `ambitctl lab <arguments>` and waits for it (output through files: `lab up` leaves detached
    /// children that must not keep a pipe open).
    @discardableResult
    static func lab(_ arguments: [String], environment: [String: String] = [:]) throws -> Result {
        try ProcessRunner.run(ambitctl, ["lab"] + arguments, environment: environment)
    }

    /// A lab name no other test uses: `t` + 6 hex digits (lab names are at most 8 characters).
    static func uniqueLabName() -> String {
        "t" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(6).lowercased()
    }

    /// The network namespaces that exist now.
    static func netnsList() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/var/run/netns")) ?? []).sorted()
    }
}

extension ProcessRunner.Result {
    /// Standard output then standard error, for failure messages and `contains` checks.
    var all: String { standardOutput + standardError }
}
