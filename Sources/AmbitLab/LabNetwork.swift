import AmbitModel
import FoundationEssentials

/// Builds and removes the lab's namespaces and links with `ip`. Nothing here touches the host's own interfaces:
/// every link is created inside, or moved straight into, a namespace the lab owns.
struct LabNetwork: Sendable {
    let tools: HostTools
    let runner: any CommandRunning

    func netnsExists(_ name: String) -> Bool {
        FileManager.default.fileExists(atPath: LabLayout.netnsPath(name))
    }

    func listNetns() -> [String] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: LabLayout.netnsDirectory)) ?? []
        return entries.sorted()
    }

    func addNetns(_ name: String) throws {
        try runner.check(tools.ip, ["netns", "add", name], what: "create netns \(name)")
        try runner.check(tools.ip, ["-n", name, "link", "set", "lo", "up"], what: "bring up lo in \(name)")
    }

    func deleteNetns(_ name: String) throws {
        try runner.check(tools.ip, ["netns", "delete", name], what: "delete netns \(name)")
    }

    /// The underlay: a netns holding only bridge `br0`, to which every node's veth is attached.
    func createUnderlay(netns: String) throws {
        try addNetns(netns)
        try runner.check(
            tools.ip,
            ["-n", netns, "link", "add", "br0", "type", "bridge"],
            what: "create underlay bridge"
        )
        try runner.check(tools.ip, ["-n", netns, "link", "set", "br0", "up"], what: "bring up underlay bridge")
    }

    /// A node: `eth0` with its underlay address (the veth peer `ul-<node>` sits on `br0`), forwarding on,
    /// and a route to every other node's pod CIDR via that node's underlay address.
    func createNode(
        netns: String,
        underlayNetns: String,
        peerName: String,
        address: IPAddress,
        underlay: IPCIDR,
        routes: [(cidr: IPCIDR, via: IPAddress)]
    ) throws {
        try addNetns(netns)
        try runner.check(
            tools.ip,
            ["-n", underlayNetns, "link", "add", peerName, "type", "veth", "peer", "name", "eth0", "netns", netns],
            what: "create node veth"
        )
        try runner.check(tools.ip, ["-n", underlayNetns, "link", "set", peerName, "master", "br0", "up"])
        try runner.check(tools.ip, ["-n", netns, "addr", "add", "\(address)/\(underlay.prefixLength)", "dev", "eth0"])
        try runner.check(tools.ip, ["-n", netns, "link", "set", "eth0", "up"])
        try runner.check(
            tools.nsenter,
            ["--net=\(LabLayout.netnsPath(netns))", "/bin/sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"],
            what: "enable forwarding in \(netns)"
        )
        for route in routes {
            try runner.check(
                tools.ip,
                ["-n", netns, "route", "add", route.cidr.description, "via", route.via.description, "dev", "eth0"],
                what: "add route in \(netns)"
            )
        }
    }

    /// Pids of every process whose network namespace is `netns`.
    func pids(in netns: String) -> [Int32] {
        guard let result = try? runner.run(tools.ip, ["netns", "pids", netns]), result.succeeded else { return [] }
        return result.standardOutput.split(whereSeparator: \.isNewline).compactMap { Int32($0) }
    }
}
