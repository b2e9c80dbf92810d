import Foundation
import PackagePlugin

/// Compiles the eBPF capture programs in `bpf/` with clang (`bpf/build.sh`) on every build that needs them, and
/// embeds the object in the target as a generated Swift file, so `ambit-node` carries its own programs and
/// needs no file beside it at run time.
@main
struct BPFObjectPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: any Target) throws -> [Command] {
        let bpf = context.package.directoryURL.appending(path: "bpf")
        let work = context.pluginWorkDirectoryURL
        let object = work.appending(path: "ambit_capture.bpf.o")
        let generated = work.appending(path: "EmbeddedBPFObject.swift")
        let sources = ["ambit_capture.bpf.c", "ambit_capture.h", "ambit_bpf_types.h", "build.sh"]
        return [
            .buildCommand(
                displayName: "Compiling the eBPF capture programs (clang -target bpf)",
                executable: URL(fileURLWithPath: "/bin/sh"),
                arguments: [bpf.appending(path: "build.sh").path, "embed", generated.path],
                environment: ["OUT": object.path],
                inputFiles: sources.map { bpf.appending(path: $0) },
                outputFiles: [generated]
            )
        ]
    }
}
