import AmbitNode
import ArgumentParser

/// `ambit-node uninstall`: removes the capture a stopped agent left on this node (see `CaptureRemoval`).
struct UninstallCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "uninstall",
        abstract: "Remove the capture a stopped ambit-node left on this node.",
        discussion: """
            An agent that stops keeps its pods captured on purpose: they fail closed (no plaintext leaves them) \
            until it is back. When it will not come back, this removes that capture: the in-pod nftables rules or \
            eBPF return-path settings of every pod recorded in --state-dir, the node's rule that lets kubelet \
            probes through (nftables table inet ambit-host, in the network namespace uninstall runs in), then the \
            eBPF pins (which detaches \
            the programs from the host and frees the maps). The pods' traffic is then no longer captured: it \
            leaves in plaintext, as from a pod outside the mesh. Refuses while an agent answers on the CNI \
            socket; to take pods out of the mesh while the agents run, remove the namespace's \
            istio.io/dataplane-mode label instead. An agent that stops with no pod captured cleans up by itself.
            """
    )

    @Option(help: "The node's name, for the default --bpf-pin-dir.")
    var nodeName: String?

    @Option(help: "The agent's --state-dir.")
    var stateDir: String = "/var/run/ambit"

    @Option(help: "The agent's CNI socket (default: <state-dir>/cni.sock).")
    var cniSocket: String?

    @Option(help: "Where the agent pinned its eBPF maps and links (default /sys/fs/bpf/ambit/<node name>).")
    var bpfPinDir: String?

    func validate() throws {
        if nodeName == nil && bpfPinDir == nil {
            throw ValidationError("give --node-name or --bpf-pin-dir (where the agent pinned its eBPF capture)")
        }
    }

    func run() throws {
        let pins = bpfPinDir ?? "/sys/fs/bpf/ambit/\(nodeName!)"
        let report = try CaptureRemoval.run(
            stateDirectory: stateDir,
            cniSocket: cniSocket ?? "\(stateDir)/cni.sock",
            pinDirectory: pins
        )
        for pod in report.released { print("released  \(pod)") }
        for pod in report.gone { print("gone      \(pod) (its network namespace no longer exists)") }
        if report.removedHostRules { print("removed   the node's probe rule (table inet ambit-host)") }
        if let kept = report.keptPins {
            print("kept      \(kept) (a pod failed; the pins tell the next run which pods had eBPF capture)")
        } else if let removed = report.removedPins {
            print("unpinned  \(removed) (eBPF programs detached, maps freed)")
        } else {
            print("unpinned  nothing at \(pins)")
        }
        for failure in report.failed { print("failed    \(failure) (record kept: run uninstall again)") }
        if !report.failed.isEmpty { throw ExitCode.failure }
    }
}
