import ArgumentParser
import FoundationEssentials

struct LabDeleteCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delete",
        abstract: "Remove a manifest previously applied (by file name) from the lab's manifest directory."
    )

    @Option(help: "Lab name (default: the only lab that is up).")
    var name: String?

    @OptionGroup var location: LabLocationOptions

    @Argument(help: "Manifest file (its base name is what is removed).")
    var file: String

    func run() throws {
        let layout = try LabRecordStore.resolve(stateDirectory: location.environment().stateDirectory, name: name)
        let base = URL(fileURLWithPath: file).lastPathComponent
        guard !LabManifests.generatedFiles.contains(base) else {
            throw LabError("\(base) is the lab's own manifest; use `lab label` or `lab down`")
        }
        let target = URL(fileURLWithPath: layout.manifestsDirectory).appendingPathComponent(base).path
        guard FileManager.default.fileExists(atPath: target) else {
            throw LabError("\(base) is not in \(layout.manifestsDirectory)")
        }
        try FileManager.default.removeItem(atPath: target)
        labSay("deleted \(target)")
    }
}
