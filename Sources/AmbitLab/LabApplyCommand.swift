import ArgumentParser
import FoundationEssentials

struct LabApplyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apply",
        abstract: "Copy a manifest file into the lab's manifest directory (agents pick it up within a second)."
    )

    @Option(help: "Lab name (default: the only lab that is up).")
    var name: String?

    @OptionGroup var location: LabLocationOptions

    @Argument(help: "Manifest file (YAML).")
    var file: String

    func run() throws {
        let layout = try LabRecordStore.resolve(stateDirectory: location.environment().stateDirectory, name: name)
        _ = try LabRecordStore(layout: layout).load()
        let target = try LabManifests(directory: layout.manifestsDirectory).copy(file)
        labSay("applied \(file) as \(target)")
    }
}
