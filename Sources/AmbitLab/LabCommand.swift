public import ArgumentParser
import FoundationEssentials
import Glibc

/// `ambitctl lab`: a Kubernetes-like cluster on this machine, built from network namespaces and the standard
/// CNI plugins, with one `ambit-node` per node.
public struct LabCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "lab",
        abstract: "Build and drive a local lab cluster (nodes and pods as network namespaces).",
        discussion: """
            Typical session (as root):
              ambitctl lab up          # the built-in lab: 2 nodes
              ambitctl lab status
              ambitctl lab exec client -- curl -s http://10.96.0.10/
              ambitctl lab label namespace legacy istio.io/dataplane-mode=ambient
              ambitctl lab down
            """,
        // The leaf commands are synchronous so they run under both a synchronous and an async root command.
        subcommands: [
            LabUpCommand.self, LabDownCommand.self, LabStatusCommand.self, LabExecCommand.self,
            LabApplyCommand.self, LabDeleteCommand.self, LabLabelCommand.self, LabKubeletCommand.self,
        ]
    )

    public init() {}
}

/// Where lab commands find programs and state.
struct LabLocationOptions: ParsableArguments {
    @Option(help: "Directory holding ambitctl, ambit-node and ambit-cni (default: this executable's directory).")
    var binDir: String?

    @Option(help: "Directory for lab state: one subdirectory per lab.")
    var stateDir: String = "/run/ambit-lab"

    @Option(help: "Directory holding the CNI reference plugins (bridge, host-local).")
    var cniBinDir: String = "/usr/lib/cni"

    @Option(help: "Directory holding the lab apps (echo.py) (default: lab/apps found above --bin-dir).")
    var appsDir: String?

    func environment() -> LabEnvironment {
        let binDirectory = binDir.map(Self.absolute) ?? Self.executableDirectory()
        return LabEnvironment(
            stateDirectory: Self.absolute(stateDir),
            binDirectory: binDirectory,
            cniBinDirectory: Self.absolute(cniBinDir),
            appsDirectory: appsDir.map(Self.absolute) ?? Self.findApps(near: binDirectory)
        )
    }

    static func absolute(_ path: String) -> String {
        URL(fileURLWithPath: path).standardizedFileURL.path
    }

    /// The directory of the running executable: `argv[0]` (searched on PATH when bare) with symlinks resolved,
    /// falling back to `/proc/self/exe`.
    static func executableDirectory() -> String {
        let argument = CommandLine.arguments.first ?? ""
        var path: String?
        if argument.contains("/") {
            path = absolute(argument)
        } else if !argument.isEmpty {
            path = HostTools.find(argument)
        }
        let executable =
            path.flatMap { FileManager.default.fileExists(atPath: $0) ? $0 : nil }
            ?? (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? argument
        return URL(fileURLWithPath: executable).resolvingSymlinksInPath().deletingLastPathComponent().path
    }

    /// `lab/apps` in the closest ancestor of `binDirectory` that has one (`.build/debug/../../lab/apps` in a
    /// checkout; the build directory may be a symlink, so a few levels are tried).
    static func findApps(near binDirectory: String) -> String? {
        var directory = URL(fileURLWithPath: binDirectory)
        for _ in 0..<5 {
            let candidate = directory.appendingPathComponent("lab/apps")
            if FileManager.default.fileExists(atPath: candidate.appendingPathComponent("echo.py").path) {
                return candidate.path
            }
            directory.deleteLastPathComponent()
        }
        return nil
    }
}

/// Prints a progress line immediately (stdout may be a pipe in tests and scripts).
func labSay(_ line: String) {
    print(line)
    fflush(nil)
}
