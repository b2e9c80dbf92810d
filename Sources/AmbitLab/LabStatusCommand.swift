import ArgumentParser
import FoundationEssentials
import Glibc

struct LabStatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show a lab's nodes and pods: IPs, enrollment, capture, agents and tunnels."
    )

    @Option(help: "Lab name (default: the only lab that is up).")
    var name: String?

    @Flag(help: "Print JSON instead of tables.")
    var json = false

    @OptionGroup var location: LabLocationOptions

    func run() throws {
        let environment = location.environment()
        let layout = try LabRecordStore.resolve(stateDirectory: environment.stateDirectory, name: name)
        let record = try LabRecordStore(layout: layout).load()
        // Entering a node netns needs root; without it capture and tunnels show as unknown.
        let tools = geteuid() == 0 ? try? HostTools.locateBasic() : nil
        let probe = tools.map { AgentProbe(tools: $0, runner: ProcessCommandRunner()) }
        let report = LabStatusReport.make(record: record, layout: layout, probe: probe)
        print(json ? report.json : report.table, terminator: json ? "\n" : "")
    }
}
