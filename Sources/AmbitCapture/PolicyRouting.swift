import AmbitModel

/// The return-path policy routing, written as rtnetlink messages:
/// `ip rule add fwmark 0x111/0xfff lookup 100 pref 32765` and `ip route add local 0.0.0.0/0 dev lo table 100`
/// (and their IPv6 twins). Packets whose mark was restored to 0x111 by the `output_route` chain are
/// delivered locally — to the agent's transparent socket — instead of leaving the pod.
enum PolicyRouting {
    enum Family: UInt8, CaseIterable {
        case ipv4 = 2  // AF_INET
        case ipv6 = 10  // AF_INET6

        var name: String { self == .ipv4 ? "IPv4" : "IPv6" }
        var anyPrefix: String { self == .ipv4 ? "0.0.0.0/0" : "::/0" }
    }

    private static let routeProtocol: Int32 = 0  // NETLINK_ROUTE
    private static let newRoute: UInt16 = 24  // RTM_NEWROUTE
    private static let deleteRoute: UInt16 = 25  // RTM_DELROUTE
    private static let newRule: UInt16 = 32  // RTM_NEWRULE
    private static let deleteRule: UInt16 = 33  // RTM_DELRULE
    /// The loopback device is interface 1 in every network namespace.
    private static let loopbackIndex: UInt32 = 1

    static func install() throws(CaptureError) {
        let socket = try NetlinkSocket(protocol: routeProtocol, name: "rtnetlink")
        for family in Family.allCases {
            // Replace makes the route idempotent; it needs `lo` up, as it is in every pod.
            let routeSequence = socket.sequence()
            try socket.transact(
                routeMessage(family, type: newRoute, flags: Netlink.create | Netlink.replace, sequence: routeSequence),
                expected: [routeSequence: "add route local \(family.anyPrefix) dev lo table \(MeshMarks.routeTable)"]
            )
            // Exclusive create: an identical rule already present answers EEXIST, which is success.
            let ruleSequence = socket.sequence()
            try socket.transact(
                ruleMessage(family, type: newRule, flags: Netlink.create | Netlink.exclusive, sequence: ruleSequence),
                expected: [ruleSequence: "add \(family.name) rule \(ruleText)"],
                tolerating: [SystemCalls.exists]
            )
        }
    }

    static func uninstall() throws(CaptureError) {
        let socket = try NetlinkSocket(protocol: routeProtocol, name: "rtnetlink")
        for family in Family.allCases {
            // Deleting without a preference matches every copy of the rule, whatever its preference.
            for _ in 0..<16 {
                let sequence = socket.sequence()
                let message = ruleMessage(family, type: deleteRule, flags: 0, sequence: sequence, priority: nil)
                let code = try socket.status(of: message, sequence: sequence, label: "delete \(family.name) rule")
                if code == SystemCalls.notFound { break }
                guard code == 0 else {
                    throw CaptureError.netlink(
                        operation: "delete \(family.name) rule \(ruleText)",
                        errno: code,
                        message: nil
                    )
                }
            }
            let sequence = socket.sequence()
            try socket.transact(
                routeMessage(family, type: deleteRoute, flags: 0, sequence: sequence),
                expected: [sequence: "delete route local \(family.anyPrefix) dev lo table \(MeshMarks.routeTable)"],
                tolerating: [SystemCalls.noSuchProcess, SystemCalls.notFound]
            )
        }
    }

    static var ruleText: String {
        "fwmark 0x\(String(MeshMarks.returnPath, radix: 16))/0x\(String(MeshMarks.mask, radix: 16)) "
            + "lookup \(MeshMarks.routeTable) pref \(InPodRules.rulePriority)"
    }

    /// `RTM_*RULE` with a `struct fib_rule_hdr` (action FR_ACT_TO_TBL) and fwmark/mask/table attributes.
    static func ruleMessage(
        _ family: Family,
        type: UInt16,
        flags: UInt16,
        sequence: UInt32,
        priority: UInt32? = InPodRules.rulePriority
    ) -> [UInt8] {
        let table = MeshMarks.routeTable
        // family, dst_len, src_len, tos, table, res1, res2, action; flags.
        let header: [UInt8] = [family.rawValue, 0, 0, 0, UInt8(truncatingIfNeeded: table), 0, 0, 1, 0, 0, 0, 0]
        var message = Netlink.MessageBuilder(
            type: type,
            flags: Netlink.request | Netlink.ack | flags,
            sequence: sequence,
            familyHeader: header
        )
        message.attribute(15, u32: table)  // FRA_TABLE
        message.attribute(10, u32: MeshMarks.returnPath)  // FRA_FWMARK
        message.attribute(16, u32: MeshMarks.mask)  // FRA_FWMASK
        if let priority { message.attribute(6, u32: priority) }  // FRA_PRIORITY
        return message.finish()
    }

    /// `RTM_*ROUTE` for `local <any>/0 dev lo table 100` with a `struct rtmsg`.
    static func routeMessage(_ family: Family, type: UInt16, flags: UInt16, sequence: UInt32) -> [UInt8] {
        let table = MeshMarks.routeTable
        // family, dst_len, src_len, tos, table, protocol (boot), scope (host), type (local); flags.
        let header: [UInt8] = [family.rawValue, 0, 0, 0, UInt8(truncatingIfNeeded: table), 3, 254, 2, 0, 0, 0, 0]
        var message = Netlink.MessageBuilder(
            type: type,
            flags: Netlink.request | Netlink.ack | flags,
            sequence: sequence,
            familyHeader: header
        )
        message.attribute(15, u32: table)  // RTA_TABLE
        message.attribute(4, u32: loopbackIndex)  // RTA_OIF
        return message.finish()
    }
}
