import ArgumentParser
import FoundationEssentials

struct LabExecCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "exec",
        abstract: "Run a command inside a pod's network namespace.",
        discussion: "Example: ambitctl lab exec client -- curl -s http://10.96.0.10/"
    )

    @Option(help: "Lab name (default: the only lab that is up).")
    var name: String?

    @OptionGroup var location: LabLocationOptions

    @Argument(help: "The pod: NAME or NAMESPACE/NAME.")
    var pod: String

    @Argument(parsing: .captureForPassthrough, help: "The command and its arguments (after --).")
    var command: [String] = []

    func run() throws {
        try HostTools.requireRoot("exec")
        let arguments = command.first == "--" ? Array(command.dropFirst()) : command
        guard !arguments.isEmpty else { throw LabError("no command given: ambitctl lab exec POD -- CMD [ARGS...]") }
        let environment = location.environment()
        let layout = try LabRecordStore.resolve(stateDirectory: environment.stateDirectory, name: name)
        let target = try LabRecordStore(layout: layout).load().pod(matching: pod)
        let tools = try HostTools.locateBasic()
        let exitStatus = try ProcessHandle.runForeground(
            [tools.nsenter, "--net=\(LabLayout.netnsPath(target.netns))", "--"] + arguments
        )
        if exitStatus != 0 { throw ExitCode(exitStatus) }
    }
}
