import AmbitTestSupport
import Foundation

/// Runs the built `ambitctl` (as a user would) for the lab tests.
///
/// Which binary: `$AMBIT_AMBITCTL` if set, else the `ambitctl` next to (or above) the test bundle, i.e.
/// `.build/debug/ambitctl` after `swift build` (``TestBinaries``). To run commands in-process instead, call
/// `LabCommand.parseAsRoot(arguments)` and `run()` on the result (output then goes to the test's stdout).
enum LabCLI {
    typealias Result = ProcessRunner.Result

    static var packageRoot: URL { TestBinaries.packageRoot }

    static var ambitctl: String { TestBinaries.path("ambitctl") }

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
