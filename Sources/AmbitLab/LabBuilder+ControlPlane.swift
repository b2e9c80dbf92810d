import FoundationEssentials
import Glibc

/// The lab's control plane: `ambit-ca` in its own network namespace (`ambit-<lab>-cp`, underlay address `.10`),
/// holding the only private keys of the mesh in `control-plane/` (mode 0700). Agents and waypoints get a
/// service-account token and the root certificate, never a key, and run in a mount namespace of their own where
/// `control-plane/` is an empty mount and `tokens/` holds only their own token: no file they open by path holds a
/// key or another daemon's token. Everything runs as root on one host, so this hides rather than confines (a
/// root process can leave a mount namespace); in a cluster the key is not on the node at all.
extension LabBuilder {
    /// ambit-ca's gRPC port, as istiod's.
    static let caPort = 15012

    func startControlPlane(
        _ record: inout LabRecord,
        tools: HostTools,
        network: LabNetwork,
        store: LabRecordStore
    ) throws {
        let netns = layout.controlPlaneNetns
        let address = spec.controlPlaneAddress
        record.netns.append(netns)
        record.controlPlane = .init(netns: netns, underlayIP: address.description)
        try store.save(record)
        let routes = spec.nodes.enumerated().map {
            (cidr: $0.element.podCIDR, via: spec.underlayAddress(ofNodeAt: $0.offset))
        }
        try network.createNode(
            netns: netns,
            underlayNetns: layout.underlayNetns,
            peerName: LabSpec.underlayInterfaceName(node: "cp"),
            address: address,
            underlay: spec.underlay,
            routes: routes
        )
        try FileManager.default.createDirectory(
            atPath: layout.tokensDirectory,
            withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o700]
        )
        try runner.check(
            "\(environment.binDirectory)/ambitctl",
            ["ca", "token-key", "--dir", layout.controlPlaneDirectory],
            what: "create the token signing key"
        )
        let command = [
            tools.nsenter, "--net=\(LabLayout.netnsPath(netns))",
            "\(environment.binDirectory)/ambit-ca",
            "--ca-dir", layout.caDirectory,
            "--manifests", layout.manifestsDirectory,
            "--token-public-key", layout.tokenPublicKeyFile,
            "--server-name", address.description, "--server-name", "ambit-ca.ambit-system.svc",
            "--log-format", "json",
        ]
        let ca = try ProcessHandle.spawnDetached(command, log: layout.caLog)
        record.controlPlane?.ca = ca
        try store.save(record)
        try waitUntilReady(ca, tools: tools, netns: netns, what: "ambit-ca")
        say("  ca        ambit-ca pid \(ca.pid) on \(address):\(Self.caPort), netns \(netns) (log \(ca.log))")
    }

    /// How an agent or waypoint gets certificates: from ambit-ca with a token made for it now (bound to its pod
    /// and node), or with `--ca-dir` when the lab uses a local CA.
    func certificateArguments(
        _ record: LabRecord,
        token name: String,
        namespace: String,
        serviceAccount: String,
        node: String?,
        pod: String?
    ) throws -> [String] {
        guard spec.usesCAService, let controlPlane = record.controlPlane else {
            return ["--ca-dir", layout.caDirectory]
        }
        let token = layout.tokenFile(name)  // daemonPrefix(token:) shows this one alone under tokens/
        var arguments = [
            "ca", "token", "--key", layout.tokenKeyFile, "--namespace", namespace, "--service-account", serviceAccount,
            "--lifetime", "720h", "--out", token,
        ]
        if let node { arguments += ["--node", node] }
        if let pod { arguments += ["--pod", pod] }
        try runner.check("\(environment.binDirectory)/ambitctl", arguments, what: "make the token of \(name)")
        return [
            "--ca-address", controlPlane.caAddress, "--ca-roots", layout.caRootsFile, "--ca-token-file", token,
        ]
    }

    /// The start of a daemon's command line: in `netns`, and with a CA service, in a mount namespace of its own
    /// where `control-plane/` is an empty read-only tmpfs and `tokens/` a read-only tmpfs holding a copy of the
    /// daemon's own token (`token`, from ``certificateArguments``). Mounts made later on the host, such as pods'
    /// netns files, still propagate in (`slave`).
    func daemonPrefix(tools: HostTools, netns: String, token: String) throws -> [String] {
        let prefix = [tools.nsenter, "--net=\(LabLayout.netnsPath(netns))"]
        guard spec.usesCAService else { return prefix }
        let unshare = try HostTools.require("unshare", package: "util-linux")
        let script = [
            #"token=$(cat "$1")"#,
            #"mount -t tmpfs -o ro,size=4k,mode=0500 ambit-hidden "$0""#,
            #"mount -t tmpfs -o size=64k,mode=0700 ambit-tokens "$2""#,
            #"printf '%s\n' "$token" > "$1""#,
            #"mount -o remount,ro "$2""#,
            "shift 2",
            #"exec "$@""#,
        ].joined(separator: " && ")
        return prefix + [
            unshare, "--mount", "--propagation", "slave", "/bin/sh", "-c", script,
            layout.controlPlaneDirectory, layout.tokenFile(token), layout.tokensDirectory,
        ]
    }

    /// With eBPF, the host's bpffs must be mounted before an agent starts in a mount namespace of its own: one the
    /// agent mounted there would hold its pins out of the host's (and its successor's) sight.
    func ensureHostBPFFilesystem() throws {
        let mounts = (try? String(contentsOfFile: "/proc/self/mounts", encoding: .utf8)) ?? ""
        guard
            !mounts.split(separator: "\n").contains(where: {
                $0.split(separator: " ").dropFirst().first == "/sys/fs/bpf"
            })
        else { return }
        try runner.check("/bin/mount", ["-t", "bpf", "bpf", "/sys/fs/bpf"], what: "mount the host's bpffs")
    }

    /// Waits for a daemon's readiness port (15021 in `netns`), failing with its log tail when it exits or takes
    /// longer than ``agentReadyTimeout``.
    func waitUntilReady(_ process: ProcessHandle, tools: HostTools, netns: String, what: String) throws {
        let probe = AgentProbe(tools: tools, runner: runner)
        let deadline = Date().addingTimeInterval(Self.agentReadyTimeout)
        while !probe.isReady(netns: netns) {
            guard process.isAlive else { throw LabError("\(what) exited; log tail:\n\(process.logTail())") }
            guard Date() < deadline else {
                throw LabError(
                    "\(what) not ready within \(Int(Self.agentReadyTimeout)) s (\(AgentProbe.readinessURL)); "
                        + "log tail:\n\(process.logTail())"
                )
            }
            usleep(200_000)
        }
    }
}
