import Foundation

/// The outcome of a finished command.
struct CommandResult: Sendable {
    var status: Int32
    var standardOutput: String
    var standardError: String

    var succeeded: Bool { status == 0 }

    /// Both streams, trimmed, for error messages.
    var combinedOutput: String {
        [standardOutput, standardError].map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
            .filter { !$0.isEmpty }.joined(separator: "\n")
    }
}

/// Runs external commands (`ip`, `nsenter`, CNI plugins). The one seam between the lab logic and the host:
/// a test can substitute a recording runner without root.
protocol CommandRunning: Sendable {
    func run(_ executable: String, _ arguments: [String], environment: [String: String]?, input: Data?) throws
        -> CommandResult
}

extension CommandRunning {
    func run(_ executable: String, _ arguments: [String]) throws -> CommandResult {
        try run(executable, arguments, environment: nil, input: nil)
    }

    /// Runs and throws a ``LabError`` with the command line and its output when it exits non-zero.
    @discardableResult
    func check(_ executable: String, _ arguments: [String], what: String? = nil) throws -> CommandResult {
        let result = try run(executable, arguments)
        guard result.succeeded else {
            let line = ([executable] + arguments).joined(separator: " ")
            throw LabError(
                "\(what.map { "\($0): " } ?? "")`\(line)` failed (\(result.status)): \(result.combinedOutput)"
            )
        }
        return result
    }
}

/// Runs commands with Foundation's `Process`. Output goes through temporary files, not pipes, so a command that
/// leaves a background child holding the descriptor open cannot hang the runner.
struct ProcessCommandRunner: CommandRunning {
    func run(_ executable: String, _ arguments: [String], environment: [String: String]?, input: Data?) throws
        -> CommandResult
    {
        let scratch = FileManager.default.temporaryDirectory
            .appendingPathComponent("ambit-lab-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let outURL = scratch.appendingPathComponent("out")
        let errURL = scratch.appendingPathComponent("err")
        let inURL = scratch.appendingPathComponent("in")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: inURL.path, contents: input ?? Data())

        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment { process.environment = environment }
        let out = try FileHandle(forWritingTo: outURL)
        let err = try FileHandle(forWritingTo: errURL)
        let stdin = try FileHandle(forReadingFrom: inURL)
        defer {
            try? out.close()
            try? err.close()
            try? stdin.close()
        }
        process.standardOutput = out
        process.standardError = err
        process.standardInput = stdin
        do {
            try process.run()
        } catch {
            throw LabError("cannot run \(executable): \(error.localizedDescription)")
        }
        process.waitUntilExit()
        let status =
            process.terminationReason == .uncaughtSignal ? 128 + process.terminationStatus : process.terminationStatus
        return CommandResult(
            status: status,
            standardOutput: (try? String(contentsOf: outURL, encoding: .utf8)) ?? "",
            standardError: (try? String(contentsOf: errURL, encoding: .utf8)) ?? ""
        )
    }
}
