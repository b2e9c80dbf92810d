import Foundation

/// Runs the built `ambitctl` (as a user would) for the lab tests.
///
/// Which binary: `$AMBIT_LAB_AMBITCTL` if set, else the `ambitctl` next to (or above) the test bundle, i.e.
/// `.build/debug/ambitctl` after `swift build`. To run commands in-process instead, call
/// `LabCommand.parseAsRoot(arguments)` and `run()` on the result (output then goes to the test's stdout).
enum LabCLI {
    struct Result {
        var status: Int32
        var standardOutput: String
        var standardError: String
        var all: String { standardOutput + standardError }
    }

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

    /// Runs `ambitctl lab <arguments>` and waits for it.
    @discardableResult
    static func lab(_ arguments: [String], environment: [String: String] = [:]) throws -> Result {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("lab-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let out = scratch.appendingPathComponent("out")
        let err = scratch.appendingPathComponent("err")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        _ = FileManager.default.createFile(atPath: err.path, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ambitctl)
        process.arguments = ["lab"] + arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        // Files rather than pipes: `lab up` leaves detached children that must not keep a pipe open.
        let outHandle = try FileHandle(forWritingTo: out)
        let errHandle = try FileHandle(forWritingTo: err)
        defer {
            try? outHandle.close()
            try? errHandle.close()
        }
        process.standardOutput = outHandle
        process.standardError = errHandle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        return Result(
            status: process.terminationStatus,
            standardOutput: try String(contentsOf: out, encoding: .utf8),
            standardError: try String(contentsOf: err, encoding: .utf8)
        )
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
