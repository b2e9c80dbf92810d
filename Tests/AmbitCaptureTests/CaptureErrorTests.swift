import AmbitCapture
import AmbitModel
import Testing

@Suite struct CaptureErrorTests {
    @Test func messagesNameTheOperationObjectAndReason() throws {
        let endpoint = try IPEndpoint(parsing: "10.0.0.1:80")
        let refused = CaptureError.connect(endpoint: endpoint, errno: 111)
        #expect(refused.isRefused && !refused.isTimeout)
        #expect(refused.description == "connect to 10.0.0.1:80 failed: Connection refused (errno 111)")
        let timeout = CaptureError.connectTimeout(endpoint: endpoint, timeout: .seconds(2))
        #expect(timeout.isTimeout && !timeout.isRefused && timeout.errno == nil)
        let netlink = CaptureError.netlink(operation: "add chain inet ambit output_nat", errno: 1, message: nil)
        #expect(
            netlink.description.hasPrefix("netlink add chain inet ambit output_nat failed: Operation not permitted")
        )
        #expect(netlink.description.contains("CAP_NET_ADMIN"))
    }
}
