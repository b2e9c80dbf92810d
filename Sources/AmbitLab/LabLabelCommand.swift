import ArgumentParser
import FoundationEssentials

struct LabLabelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "label",
        abstract: "Set (key=value) or remove (key-) a namespace label, e.g. to enroll a namespace at run time.",
        discussion: "Example: ambitctl lab label namespace legacy istio.io/dataplane-mode=ambient"
    )

    @Option(help: "Lab name (default: the only lab that is up).")
    var name: String?

    @OptionGroup var location: LabLocationOptions

    @Argument(help: "Object kind; only `namespace` is supported.")
    var kind: String

    @Argument(help: "Namespace name.")
    var object: String

    @Argument(help: "key=value to set, key- to remove.")
    var changes: [String]

    func run() throws {
        guard ["namespace", "namespaces", "ns"].contains(kind) else {
            throw LabError("only namespaces can be labelled (got \"\(kind)\")")
        }
        let edits = try changes.map(LabelEdit.parse)
        let layout = try LabRecordStore.resolve(stateDirectory: location.environment().stateDirectory, name: name)
        let store = LabRecordStore(layout: layout)
        var record = try store.load()
        guard let index = record.spec.namespaces.firstIndex(where: { $0.name == object }) else {
            let known = record.spec.namespaces.map(\.name).joined(separator: ", ")
            throw LabError("lab \(record.name) has no namespace \"\(object)\" (namespaces: \(known))")
        }
        for edit in edits { edit.apply(to: &record.spec.namespaces[index].labels) }
        try LabManifests(directory: layout.manifestsDirectory).writeNamespaces(record.spec)
        try store.save(record)
        let labels = record.spec.namespaces[index].labels.sorted { $0.key < $1.key }.map { "\($0)=\($1)" }
        labSay("namespace \(object) labels: \(labels.isEmpty ? "(none)" : labels.joined(separator: ","))")
    }
}
