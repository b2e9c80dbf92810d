import ArgumentParser
import FoundationEssentials

struct LabDownCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "down",
        abstract: "Remove a lab: processes, CNI attachments, namespaces, state. Safe to run twice."
    )

    @Option(help: "Lab name (default: the only lab that is up).")
    var name: String?

    @Flag(
        help: """
            Remove every lab under --state-dir, then every ambit-* network namespace on this machine \
            (also those of labs under another --state-dir).
            """
    )
    var all = false

    @OptionGroup var location: LabLocationOptions

    func run() throws {
        try HostTools.requireRoot("down")
        let environment = location.environment()
        let teardown = LabTeardown(environment: environment, runner: ProcessCommandRunner(), say: labSay)
        if all {
            try teardown.teardownAll()
            return
        }
        if name == nil, LabRecordStore.labNames(stateDirectory: environment.stateDirectory).isEmpty {
            labSay("no lab is up under \(environment.stateDirectory); nothing to do")
            return
        }
        let layout = try LabRecordStore.resolve(stateDirectory: environment.stateDirectory, name: name)
        try teardown.teardown(layout: layout)
    }
}
