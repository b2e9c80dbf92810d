import ArgumentParser
import FoundationEssentials

struct LabUpCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "up",
        abstract: "Build a lab from a lab file (default: the built-in two-node lab).",
        discussion: "Refuses if a lab of that name is already up; `lab down` removes it, also when half built."
    )

    @Option(name: .shortAndLong, help: "Lab file (YAML). Without it the built-in default lab is used.")
    var file: String?

    @Option(help: "Capture backend of the agents: nftables or ebpf (overrides the lab file's `capture`).")
    var capture: String?

    @Option(
        help: """
            Where certificates come from: service (ambit-ca in its own netns; agents and waypoints get a token and \
            the root, and the CA key is hidden from them) or local (each agent signs with the lab's CA directory). \
            Overrides the lab file's `ca`.
            """
    )
    var ca: String?

    @OptionGroup var location: LabLocationOptions

    func run() throws {
        var spec: LabSpec
        let labFile: String
        if let file {
            labFile = LabLocationOptions.absolute(file)
            spec = try LabSpec.load(path: labFile)
        } else {
            labFile = "<built-in default lab>"
            spec = try LabSpec.defaultLab()
        }
        if let capture {
            guard let mode = LabSpec.Capture(rawValue: capture) else {
                throw ValidationError("--capture must be nftables or ebpf, not \(capture)")
            }
            spec.capture = mode
        }
        if let ca {
            guard let mode = LabSpec.CAMode(rawValue: ca) else {
                throw ValidationError("--ca must be service or local, not \(ca)")
            }
            spec.ca = mode
        }
        let environment = location.environment()
        let runner = ProcessCommandRunner()
        let record = try LabBuilder(
            spec: spec,
            labFile: labFile,
            environment: environment,
            runner: runner,
            say: labSay
        ).build()
        let layout = LabLayout(stateDirectory: environment.stateDirectory, name: record.name)
        let probe = (try? HostTools.locateBasic()).map { AgentProbe(tools: $0, runner: runner) }
        labSay("")
        labSay(LabStatusReport.make(record: record, layout: layout, probe: probe).table)
    }
}
