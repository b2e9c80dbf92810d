public import AmbitModel

/// The node side of the capture: the kubelet probes its pods from the node's own network namespace,
/// and those probes must get through a captured pod without the mesh (under PeerAuthentication STRICT
/// or an ALLOW-only policy a plaintext probe would be refused, and no pod would become Ready). As
/// istio-cni does, connections this host opens to a captured pod are source-NATed to Istio's probe
/// address, which the in-pod rules (``InPodRules``) and the eBPF `sk_lookup` program let through:
///
/// ```
/// table inet ambit-host {
///     chain postrouting_nat {     # type nat hook postrouting priority srcnat
///         ip daddr <pod IP> meta l4proto tcp fib saddr type local snat ip to 169.254.7.127
///         ip6 daddr <pod IP> meta l4proto tcp fib saddr type local snat ip6 to fd16:9254:7127:1337:ffff:ffff:ffff:ffff
///         …one rule per captured pod address
///     }
/// }
/// ```
///
/// `fib saddr type local` singles out what the host itself sends (a forwarded packet from another pod
/// or node has a source that is not local). The agent replaces the table atomically whenever its set of
/// captured pods changes (and deletes it when none is left); it stays when the agent stops (probes keep passing while captured pods wait
/// for it) and `ambit-node uninstall` removes it. Acts in the calling thread's network namespace and
/// needs `CAP_NET_ADMIN` there.
public enum HostRules {
    public static let tableName = "ambit-host"

    /// The probe source for each family (Istio's addresses).
    public static func probeSource(for address: IPAddress) -> IPAddress {
        address.isIPv4 ? InPodRules.probeSources[0] : InPodRules.probeSources[1]
    }

    /// Installs (or atomically replaces) the rules for the captured pods' addresses; with none, the table
    /// goes (a node without captured pods carries no Ambit rule, and an agent that never captured
    /// anything leaves the host's ruleset as it found it).
    public static func apply(podAddresses: some Sequence<IPAddress>) throws(CaptureError) {
        let table = table(podAddresses: podAddresses)
        if table.chains.allSatisfy(\.rules.isEmpty) {
            try remove()
        } else {
            try NFTBatch.replace(table)
        }
    }

    /// Removes the table; succeeds when it is already absent.
    public static func remove() throws(CaptureError) {
        try NFTBatch.delete(tableName: tableName)
    }

    public static func isApplied() throws(CaptureError) -> Bool {
        try NFTBatch.tableExists(tableName)
    }

    /// The rules as `nft list table inet ambit-host` prints them (one line per rule, without handles).
    public static func ruleLines(podAddresses: some Sequence<IPAddress>) -> [String] {
        table(podAddresses: podAddresses).rules.map(\.text)
    }

    static func table(podAddresses: some Sequence<IPAddress>) -> NFTTable {
        let rules = Set(podAddresses).sorted().map { address -> NFTRule in
            let family = address.isIPv4 ? "ip" : "ip6"
            let source = probeSource(for: address)
            return NFTRule(
                expressions: NFTMatch.address(source: false, address, .equal) + NFTMatch.tcp + NFTMatch.fromThisHost
                    + [.snat(to: source)],
                text: "\(family) daddr \(address) meta l4proto tcp fib saddr type local snat \(family) to \(source)"
            )
        }
        return NFTTable(
            name: tableName,
            chains: [NFTChain(name: "postrouting_nat", kind: .nat, hook: .postrouting, priority: 100, rules: rules)]
        )
    }
}
