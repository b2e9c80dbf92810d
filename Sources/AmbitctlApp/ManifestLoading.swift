import AmbitConfig
import AmbitModel
import ArgumentParser
import Glibc
import Logging

/// Loads a manifest directory once for a CLI command, failing on any rejected file:
/// a command that answers questions about a half-read directory would mislead.
func loadManifests(_ directory: String, options: ConfigOptions, logger: Logger) throws -> (
    ConfigSnapshot, ManifestDirectorySource.Report
) {
    var quiet = logger
    quiet.logLevel = .critical  // the command prints problems itself
    let store = ConfigStore(options: options)
    let source = ManifestDirectorySource(directory: directory, store: store, logger: quiet)
    let report = try source.reload()
    for warning in report.warnings {
        printError("warning: \(warning)")
    }
    guard report.errors.isEmpty else {
        for error in report.errors {
            printError("error: \(error)")
        }
        let count = report.errors.count
        throw CLIError("\(count) manifest file\(count == 1 ? "" : "s") rejected in \(directory)")
    }
    return (store.snapshot, report)
}

func printError(_ text: String) {
    var standardError = StandardError()
    print(text, to: &standardError)
}

struct StandardError: TextOutputStream {
    mutating func write(_ string: String) {
        FileDescriptorWriter.write(2, string)
    }
}

enum FileDescriptorWriter {
    static func write(_ fd: Int32, _ text: String) {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if written <= 0 { return }
            bytes = bytes.dropFirst(written)
        }
    }
}

/// Mesh-wide settings shared by the commands that read manifests.
struct MeshOptions: ParsableArguments {
    @Option(help: "SPIFFE trust domain of the mesh.")
    var trustDomain: String = SpiffeID.defaultTrustDomain

    @Option(help: "Root namespace: its selector-less policies apply mesh-wide.")
    var rootNamespace: String = WellKnownLabels.defaultRootNamespace

    var configOptions: ConfigOptions {
        ConfigOptions(trustDomain: trustDomain, rootNamespace: rootNamespace)
    }

    func validate() throws {
        do {
            _ = try SpiffeID(trustDomain: trustDomain, namespace: "x", serviceAccount: "x")
        } catch let error as SpiffeIDError {
            throw ValidationError("--trust-domain: \(error.reason)")
        }
    }
}
