import AmbitModel

/// The in-pod traffic capture of the nftables backend, installed inside an enrolled pod's network
/// namespace: nftables rules that send the pod's TCP to the agent, and the policy route that brings
/// replies to the agent's spoofed-source connections back to it.
///
/// All functions act on the calling thread's network namespace: run them through `NetnsExecutor`.
/// They need `CAP_NET_ADMIN` there. The ruleset, in `nft` syntax, is `ruleDescription`:
///
/// ```
/// table inet ambit {
///     chain prerouting_mangle {   # type filter hook prerouting priority mangle
///         meta mark & 0xfff == 0x539 → ct mark set (ct mark & ~0xfff) | 0x111
///     }
///     chain output_route {        # type route hook output priority mangle
///         ct mark & 0xfff == 0x111 → meta mark set ct mark
///     }
///     chain prerouting_nat {      # type nat hook prerouting priority dstnat
///         meta mark & 0xfff == 0x539 accept
///         ip saddr 169.254.7.127 tcp accept           (and the IPv6 probe source)
///         iifname lo, daddr not loopback, tcp accept  (per family)
///         tcp dport 15008 accept
///         tcp, daddr not loopback, mark & 0xfff != 0x539 → redirect to :15006   (per family)
///     }
///     chain output_nat {          # type nat hook output priority -100
///         meta mark & 0xfff == 0x111 accept
///         oifname lo, daddr not loopback accept       (per family)
///         tcp, daddr not loopback, mark & 0xfff != 0x539 → redirect to :15001   (per family)
///     }
/// }
/// ip rule:  fwmark 0x111/0xfff lookup 100 (IPv4 and IPv6, preference 32765)
/// ip route: local 0.0.0.0/0 dev lo table 100, local ::/0 dev lo table 100
/// ```
///
/// No sysctl is changed: replies are re-routed by `output_route` to a `local` route and delivered
/// over `lo` with the route already attached, so `rp_filter`/`accept_local` are never consulted, and
/// `IP_TRANSPARENT` + `IP_FREEBIND` let the agent bind the foreign source without `ip_nonlocal_bind`.
public enum InPodRules {
    /// The nftables table (family `inet`, so one table serves IPv4 and IPv6).
    public static let tableName = "ambit"
    /// `ip rule` preference of the return-path rule: before `main` (32766), where `ip rule add` would put it.
    public static let rulePriority: UInt32 = 32765

    /// Installs (or atomically replaces) the rules and the policy routing.
    public static func apply() throws(CaptureError) {
        try NFTBatch.replace(table)
        try PolicyRouting.install()
    }

    /// Removes the table and the policy routing. Succeeds when they are already absent.
    public static func remove() throws(CaptureError) {
        try NFTBatch.delete(tableName: tableName)
        try PolicyRouting.uninstall()
    }

    /// Whether the `ambit` table exists in this namespace.
    public static func isApplied() throws(CaptureError) -> Bool {
        try NFTBatch.tableExists(tableName)
    }

    /// The installed ruleset as `nft list table inet ambit` prints it (without handles).
    public static var ruleDescription: String {
        var lines = ["table inet \(tableName) {"]
        for (index, chain) in table.chains.enumerated() {
            if index > 0 { lines.append("") }
            lines.append("\tchain \(chain.name) {")
            lines.append(
                "\t\ttype \(chain.kind.rawValue) hook \(chain.hook) priority \(priorityName(chain)); policy accept;"
            )
            lines += chain.rules.map { "\t\t\($0.text)" }
            lines.append("\t}")
        }
        lines.append("}")
        return lines.joined(separator: "\n")
    }

    /// `nft`'s names for standard priorities.
    private static func priorityName(_ chain: NFTChain) -> String {
        switch (chain.priority, chain.hook, chain.kind) {
        case (-150, _, _): return "mangle"
        case (-100, .prerouting, _): return "dstnat"
        default: return "\(chain.priority)"
        }
    }

    // MARK: - The ruleset

    static let loopbacks: [IPAddress] = [.v4(0x7f00_0001), .v6(high: 0, low: 1)]
    /// Kubelet probes arrive SNAT-ed from these (Istio's addresses, kept so the two interoperate).
    static let probeSources: [IPAddress] = [
        .v4(0xa9fe_077f),  // 169.254.7.127
        .v6(high: 0xfd16_9254_7127_1337, low: 0xffff_ffff_ffff_ffff),
    ]

    static var table: NFTTable {
        let agent = MeshMarks.agentSocket
        let returnPath = MeshMarks.returnPath
        let mask = MeshMarks.mask
        let markText = { (value: UInt32) in "meta mark & \(hex(mask)) == \(hex(value))" }
        let notAgent = "meta mark & \(hex(mask)) != \(hex(agent))"
        let isAgent = NFTMatch.mark(agent, mask: mask, .equal)

        let preroutingMangle = NFTChain(
            name: "prerouting_mangle",
            kind: .filter,
            hook: .prerouting,
            priority: -150,
            rules: [
                NFTRule(
                    expressions: isAgent + [
                        .ctLoadMark, .bitwise(mask: NFTMatch.hostU32(~mask), xor: NFTMatch.hostU32(returnPath)),
                        .ctSetMark,
                    ],
                    // nft 1.0 prints the mask merged with the value it ORs in.
                    text: "\(markText(agent)) ct mark set ct mark & \(hex(~mask | returnPath)) | \(hex(returnPath))"
                )
            ]
        )
        let outputRoute = NFTChain(
            name: "output_route",
            kind: .route,
            hook: .output,
            priority: -150,
            rules: [
                NFTRule(
                    expressions: NFTMatch.ctMark(returnPath, mask: mask) + [.ctLoadMark, .metaSetMark],
                    text: "ct mark & \(hex(mask)) == \(hex(returnPath)) meta mark set ct mark"
                )
            ]
        )
        var preroutingNAT: [NFTRule] = [
            NFTRule(expressions: isAgent + [.accept], text: "\(markText(agent)) accept")
        ]
        for source in probeSources {
            preroutingNAT.append(
                NFTRule(
                    expressions: NFTMatch.address(source: true, source, .equal) + NFTMatch.tcp + [.accept],
                    text: "\(family(source)) saddr \(source) meta l4proto tcp accept"
                )
            )
        }
        for loopback in loopbacks {
            preroutingNAT.append(
                NFTRule(
                    expressions: NFTMatch.interface(.iifname, "lo")
                        + NFTMatch.address(source: false, loopback, .notEqual) + NFTMatch.tcp + [.accept],
                    text: "iifname \"lo\" \(family(loopback)) daddr != \(loopback) meta l4proto tcp accept"
                )
            )
        }
        preroutingNAT.append(
            NFTRule(
                expressions: NFTMatch.tcpDestinationPort(MeshPorts.hbone) + [.accept],
                text: "tcp dport \(MeshPorts.hbone) accept"
            )
        )
        preroutingNAT += loopbacks.map { redirectRule($0, to: MeshPorts.inboundPlaintext, notAgent: notAgent) }

        var outputNAT: [NFTRule] = [
            NFTRule(
                expressions: NFTMatch.mark(returnPath, mask: mask, .equal) + [.accept],
                text: "\(markText(returnPath)) accept"
            )
        ]
        for loopback in loopbacks {
            outputNAT.append(
                NFTRule(
                    expressions: NFTMatch.interface(.oifname, "lo")
                        + NFTMatch.address(source: false, loopback, .notEqual) + [.accept],
                    text: "oifname \"lo\" \(family(loopback)) daddr != \(loopback) accept"
                )
            )
        }
        outputNAT += loopbacks.map { redirectRule($0, to: MeshPorts.outbound, notAgent: notAgent) }

        return NFTTable(
            name: tableName,
            chains: [
                preroutingMangle,
                outputRoute,
                NFTChain(name: "prerouting_nat", kind: .nat, hook: .prerouting, priority: -100, rules: preroutingNAT),
                NFTChain(name: "output_nat", kind: .nat, hook: .output, priority: -100, rules: outputNAT),
            ]
        )
    }

    /// TCP not to the loopback address and not from the agent → redirect to the agent's `port`.
    private static func redirectRule(_ loopback: IPAddress, to port: UInt16, notAgent: String) -> NFTRule {
        NFTRule(
            expressions: NFTMatch.tcp + NFTMatch.address(source: false, loopback, .notEqual)
                + NFTMatch.mark(MeshMarks.agentSocket, mask: MeshMarks.mask, .notEqual) + [.redirect(port: port)],
            text: "meta l4proto tcp \(family(loopback)) daddr != \(loopback) \(notAgent) redirect to :\(port)"
        )
    }

    private static func family(_ address: IPAddress) -> String { address.isIPv4 ? "ip" : "ip6" }

    /// `0x00000fff`, the way nft prints marks.
    private static func hex(_ value: UInt32) -> String {
        let digits = String(value, radix: 16)
        return "0x" + String(repeating: "0", count: 8 - digits.count) + digits
    }
}
