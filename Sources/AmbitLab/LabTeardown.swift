import AmbitModel
import FoundationEssentials

#if canImport(Glibc)
    import Glibc
#endif

/// `lab down`: best effort, in the order that lets each step still work — apps stop first, CNI DEL runs while
/// the agents can still release their pods, then agents stop, namespaces go (pods, nodes, underlay) and finally
/// the state directory. Every step is attempted; failures become warnings in the returned report.
struct LabTeardown {
    let environment: LabEnvironment
    let runner: any CommandRunning
    let say: (String) -> Void

    /// Tears down the lab recorded under `layout`; with no readable record, removes only the state directory.
    func teardown(layout: LabLayout) throws {
        let tools = try HostTools.locateBasic()
        let network = LabNetwork(tools: tools, runner: runner)
        let store = LabRecordStore(layout: layout)
        guard FileManager.default.fileExists(atPath: layout.root.path) else {
            say("lab \(layout.name) is not up (no \(layout.root.path)); nothing to do")
            return
        }
        say("Tearing down lab \(layout.name)")
        if let record = try? store.load() {
            teardown(record: record, layout: layout, tools: tools, network: network)
        } else {
            say("  warning: no readable \(layout.recordFile); removing only the state directory")
        }
        remove(layout.root.path)
    }

    private func teardown(record: LabRecord, layout: LabLayout, tools: HostTools, network: LabNetwork) {
        for node in record.nodes {
            if let kubelet = node.kubelet { say("  kubelet   \(node.name): \(kubelet.terminate())") }
        }
        for pod in record.pods {
            if let app = pod.app { say("  app       \(pod.qualifiedName): \(app.terminate())") }
        }
        let chain = CNIChain(
            tools: tools,
            runner: runner,
            layout: layout,
            cniBinDirectory: record.cniBinDirectory,
            binDirectory: record.binDirectory,
            mesh: record.spec.mesh
        )
        for pod in record.pods.reversed() where !pod.addedPlugins.isEmpty {
            guard let node = record.spec.node(named: pod.node), network.netnsExists(layout.nodeNetns(pod.node)) else {
                say("  warning: node netns of \(pod.qualifiedName) is gone; skipping CNI DEL")
                continue
            }
            let cniPod = LabBuilder.cniPod(pod, layout: layout, podCIDR: node.podCIDR)
            for line in chain.delete(pod: cniPod, added: pod.addedPlugins, cachedResult: pod.cniResult) {
                say("  cni       \(line)")
            }
        }
        for node in record.nodes {
            if let agent = node.agent { say("  agent     \(node.name): \(agent.terminate())") }
            // eBPF capture outlives its agent on purpose (fail closed); the lab removes it with the node.
            let pins = layout.bpfPinDirectory(node: node.name)
            if FileManager.default.fileExists(atPath: pins) {
                try? FileManager.default.removeItem(atPath: pins)
                say("  ebpf      \(node.name): removed \(pins) (programs detached)")
            }
        }
        if let ca = record.controlPlane?.ca { say("  ca        \(ca.terminate())") }
        for netns in record.netns.reversed() {
            removeNetns(netns, network: network)
        }
    }

    /// Stops whatever still runs in `netns` (SIGTERM, then SIGKILL), then deletes it.
    func removeNetns(_ netns: String, network: LabNetwork) {
        guard network.netnsExists(netns) else { return }
        let strays = network.pids(in: netns)
        if !strays.isEmpty {
            strays.forEach { _ = kill($0, SIGTERM) }
            let deadline = Date().addingTimeInterval(5)
            while Date() < deadline, !network.pids(in: netns).isEmpty { usleep(100_000) }
            network.pids(in: netns).forEach { _ = kill($0, SIGKILL) }
            say("  process   stopped pids \(strays.map(String.init).joined(separator: ",")) left in \(netns)")
        }
        do {
            try network.deleteNetns(netns)
            say("  netns     removed \(netns)")
        } catch {
            say("  warning: \(error)")
        }
    }

    private func remove(_ path: String) {
        do {
            try FileManager.default.removeItem(atPath: path)
            say("  state     removed \(path)")
        } catch {
            say("  warning: cannot remove \(path): \(error.readableDescription)")
        }
    }

    /// `lab down --all`: every lab under the state directory, then any `ambit-*` netns left by a lab whose state
    /// is gone.
    func teardownAll() throws {
        for name in LabRecordStore.labNames(stateDirectory: environment.stateDirectory) {
            try teardown(layout: LabLayout(stateDirectory: environment.stateDirectory, name: name))
        }
        let tools = try HostTools.locateBasic()
        let network = LabNetwork(tools: tools, runner: runner)
        let leftovers = network.listNetns().filter { $0.hasPrefix(LabLayout.netnsPrefix) }
        if leftovers.isEmpty {
            say("no leftover \(LabLayout.netnsPrefix)* network namespaces")
        } else {
            say("Removing leftover network namespaces")
            for netns in leftovers { removeNetns(netns, network: network) }
        }
    }
}
