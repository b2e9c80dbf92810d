import AmbitModel
import Testing

@testable import AmbitCapture

/// Pure encoding and decoding: no privileges, no kernel.
@Suite struct NetlinkEncodingTests {
    @Test func ruleMessageMatchesIPRuleAdd() {
        let bytes = PolicyRouting.ruleMessage(.ipv4, type: 32, flags: Netlink.create | Netlink.exclusive, sequence: 7)
        let expected: [UInt8] =
            [60, 0, 0, 0, 32, 0, 0x05, 0x06, 7, 0, 0, 0, 0, 0, 0, 0]  // len 60, RTM_NEWRULE, REQ|ACK|EXCL|CREATE
            + [2, 0, 0, 0, 100, 0, 0, 1, 0, 0, 0, 0]  // AF_INET, table 100, FR_ACT_TO_TBL
            + [8, 0, 15, 0, 100, 0, 0, 0]  // FRA_TABLE 100
            + [8, 0, 10, 0, 0x11, 0x01, 0, 0]  // FRA_FWMARK 0x111
            + [8, 0, 16, 0, 0xff, 0x0f, 0, 0]  // FRA_FWMASK 0xfff
            + [8, 0, 6, 0, 0xfd, 0x7f, 0, 0]  // FRA_PRIORITY 32765
        #expect(bytes == expected)
    }

    @Test func routeMessageIsALocalDefaultRouteOnLoopback() {
        let bytes = PolicyRouting.routeMessage(.ipv6, type: 24, flags: Netlink.create | Netlink.replace, sequence: 1)
        #expect(bytes.count == 16 + 12 + 8 + 8)
        #expect(Array(bytes[16..<28]) == [10, 0, 0, 0, 100, 3, 254, 2, 0, 0, 0, 0])  // AF_INET6 … RTN_LOCAL
        #expect(Array(bytes[36..<44]) == [8, 0, 4, 0, 1, 0, 0, 0])  // RTA_OIF lo
    }

    @Test func parsesAcksErrorsAndExtendedAckMessages() {
        var ack = Netlink.MessageBuilder(
            type: Netlink.errorType,
            flags: 0x100,
            sequence: 5,
            familyHeader: [0, 0, 0, 0]
        )
        ack.attribute(0, [])  // ignored padding after a capped echo
        let echoed = Netlink.MessageBuilder(type: 24, flags: 5, sequence: 6, familyHeader: []).finish()
        var error = Netlink.MessageBuilder(
            type: Netlink.errorType,
            flags: Netlink.capped | Netlink.ackTLVs,
            sequence: 6,
            familyHeader: [0x9c, 0xff, 0xff, 0xff] + echoed  // -100: ENETDOWN
        )
        error.attribute(Netlink.extAckMessage, Array("Nexthop device is not up\0".utf8))
        let done = Netlink.MessageBuilder(type: Netlink.doneType, flags: 0, sequence: 7, familyHeader: [0, 0, 0, 0])

        let replies = Netlink.parse(ack.finish() + error.finish() + done.finish())
        #expect(
            replies == [
                .ack(sequence: 5), .error(sequence: 6, errno: 100, message: "Nexthop device is not up"),
                .done(sequence: 7),
            ]
        )
    }

    @Test func truncatedInputStopsParsing() {
        let message = Netlink.MessageBuilder(type: 16, flags: 0, sequence: 1, familyHeader: [1, 2, 3, 4]).finish()
        #expect(Netlink.parse(Array(message.dropLast())).isEmpty)
        #expect(Netlink.parse(message) == [.data(type: 16, sequence: 1, payload: [1, 2, 3, 4])])
    }
}
