import ArgumentParser
import Dispatch
import FoundationEssentials
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// `ambitctl lab kubelet`: the lab's kubelet for one node. `lab up` starts one per node inside the
/// node's network namespace and `lab down` stops it; run by hand only to debug probes.
struct LabKubeletCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kubelet",
        abstract: "Probe one node's pods (readinessProbe, livenessProbe) as its kubelet would; started by `lab up`.",
        discussion: """
            Runs until SIGTERM, in the node's network namespace (lab up starts it there with nsenter). Writes \
            what it finds to <state>/<lab>/run/<node>/kubelet.json, which `lab status` shows as READY.
            """,
        shouldDisplay: false
    )

    @Option(help: "Lab name (default: the only lab that is up).")
    var name: String?

    @Option(help: "The node whose pods to probe.")
    var node: String

    @OptionGroup var location: LabLocationOptions

    func run() throws {
        let layout = try LabRecordStore.resolve(stateDirectory: location.environment().stateDirectory, name: name)
        let record = try LabRecordStore(layout: layout).load()
        guard record.spec.node(named: node) != nil else {
            throw LabError("lab \(record.name) has no node \"\(node)\"")
        }
        signal(SIGTERM, SIG_IGN)
        signal(SIGINT, SIG_IGN)
        let stopping = Atomic<Bool>(false)
        let source = DispatchSource.makeSignalSource(signal: SIGTERM)
        source.setEventHandler { stopping.store(true, ordering: .relaxed) }
        source.resume()
        let interrupt = DispatchSource.makeSignalSource(signal: SIGINT)
        interrupt.setEventHandler { stopping.store(true, ordering: .relaxed) }
        interrupt.resume()
        labSay("kubelet of \(node) in lab \(record.name) probing; status in \(layout.kubeletStatus(node: node))")
        LabKubelet(layout: layout, node: node).run { stopping.load(ordering: .relaxed) }
    }
}
