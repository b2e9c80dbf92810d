import AmbitModel
import FoundationEssentials

/// The outcome of a finished command.
struct CommandResult: Sendable {
    var status: Int32
    var standardOutput: String
    var standardError: String

    var succeeded: Bool { status == 0 }

    /// Both streams, trimmed, for error messages.
    var combinedOutput: String {
        [standardOutput, standardError].map { $0.trimmingWhitespace() }
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

/// Runs commands with `posix_spawn`. Output goes through temporary files, not pipes, so a command that leaves a
/// background child holding the descriptor open cannot hang the runner.
struct ProcessCommandRunner: CommandRunning {
    func run(_ executable: String, _ arguments: [String], environment: [String: String]?, input: Data?) throws
        -> CommandResult
    {
        let scratch = FileManager.default.temporaryDirectory
            .appendingPathComponent("ambit-lab-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let outPath = scratch.appendingPathComponent("out").path
        let errPath = scratch.appendingPathComponent("err").path
        let inPath = scratch.appendingPathComponent("in").path
        guard FileManager.default.createFile(atPath: inPath, contents: input ?? Data()) else {
            throw LabError("cannot run \(executable): cannot write its input to \(inPath)")
        }
        let pid = try ProcessHandle.spawn(
            [executable] + arguments,
            standardStreams: .files(input: inPath, output: outPath, error: errPath),
            environment: environment
        )
        let status = try ProcessHandle.wait(for: pid)
        return CommandResult(
            status: status,
            standardOutput: (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "",
            standardError: (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
        )
    }
}
