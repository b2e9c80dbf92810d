import AmbitTestSupport
import Foundation
import Testing

/// `scripts/underlay-check`, the demo's "only TLS crossed the underlay" verdict, on captures built byte by byte:
/// a retransmitted copy of a TLS segment passes, a retransmission whose bytes differ and plaintext do not.
/// Needs tshark (installed by the setup), not root.
@Suite struct UnderlayCheckTests {
    static let client = "10.244.1.2"
    static let server = "10.244.2.2"
    static let outside = "10.244.1.4"
    /// A TLS handshake record as tshark recognises one on port 15008 (type 22, version 3.1, 5 bytes).
    static let record: [UInt8] = [0x16, 0x03, 0x01, 0x00, 0x05] + Array("hello".utf8)

    @Test func identicalRetransmissionOfTLSPasses() throws {
        let result = try Self.check([
            Self.syn(),
            Self.segment(sequence: 1, Self.record),
            Self.segment(sequence: 1, Self.record),
        ])
        #expect(result.status == 0, "\(result.all)")
        #expect(
            result.standardOutput.contains(
                "mesh pods: 1 TLS segments, 1 retransmitted copies of bytes already seen, 0 segments of anything else"
            ),
            "\(result.all)"
        )
    }

    @Test func retransmissionWithOtherBytesFails() throws {
        let other = Array("0123456789".utf8)
        #expect(other.count == Self.record.count)
        let result = try Self.check([
            Self.syn(),
            Self.segment(sequence: 1, Self.record),
            Self.segment(sequence: 1, other),
        ])
        #expect(result.status == 1, "\(result.all)")
        #expect(result.standardOutput.contains("1 segments of anything else"), "\(result.all)")
        #expect(
            result.standardOutput.contains(
                "non-TLS segment: frame 3 10.244.1.2:40000 -> 10.244.2.2:15008 seq 1, 10 bytes"
            )
        )
    }

    @Test func plaintextBetweenMeshPodsFailsAndOutsidePodsAreLeftOut() throws {
        let request = Array("GET / HTTP/1.1\r\nx-secret: 1\r\n\r\n".utf8)
        let leak = try Self.check([
            Self.syn(),
            Self.segment(sequence: 1, Self.record),
            Self.segment(sequence: 11, request),
        ])
        #expect(leak.status == 1, "\(leak.all)")
        #expect(
            leak.standardOutput.contains("seq 11, \(request.count) bytes, eth:ethertype:ip:tcp:http"),
            "\(leak.all)"
        )

        let legacy = try Self.check([
            Self.segment(sequence: 1, Self.record),
            Self.segment(from: Self.outside, port: 8080, sequence: 1, request),
        ])
        #expect(legacy.status == 0, "\(legacy.all)")
        #expect(legacy.standardOutput.contains("1 TLS segments, 0 retransmitted copies"), "\(legacy.all)")
    }

    @Test func noTLSAtAllFailsAndAnUnreadableCaptureIsAnError() throws {
        let empty = try Self.check([Self.syn()])
        #expect(empty.status == 1, "\(empty.all)")
        #expect(empty.standardOutput.contains("no TLS between the mesh pods"), "\(empty.all)")

        let missing = try ProcessRunner.run(Self.script, ["/nonexistent/underlay.pcap"])
        #expect(missing.status == 2, "\(missing.all)")
        #expect(missing.standardError.contains("underlay-check: tshark could not read /nonexistent/underlay.pcap"))
    }

    // MARK: - Building captures

    static var script: String { TestBinaries.packageRoot.appendingPathComponent("scripts/underlay-check").path }

    static func check(_ frames: [[UInt8]]) throws -> ProcessRunner.Result {
        let directory = try TemporaryDirectory(prefix: "ambit-underlay-check")
        defer { directory.remove() }
        let pcap = directory.path + "/underlay.pcap"
        try Data(Self.pcap(frames)).write(to: URL(fileURLWithPath: pcap))
        return try ProcessRunner.run(script, [pcap, "--outside", outside])
    }

    static func syn() -> [UInt8] {
        frame(from: client, port: 40000, to: server, port: 15008, sequence: 0, flags: 0x02, [])
    }

    /// A data segment (PSH|ACK), its sequence number relative to a SYN at 0; by default client to server's 15008.
    static func segment(
        from: String = client,
        to: String = server,
        port: UInt16 = 15008,
        sequence: UInt32,
        _ payload: [UInt8]
    ) -> [UInt8] {
        frame(from: from, port: 40000, to: to, port: port, sequence: sequence, flags: 0x18, payload)
    }

    static let initialSequence: UInt32 = 0x1000_0000

    static func frame(
        from: String,
        port sourcePort: UInt16,
        to: String,
        port destinationPort: UInt16,
        sequence: UInt32,
        flags: UInt8,
        _ payload: [UInt8]
    ) -> [UInt8] {
        func be16(_ value: Int) -> [UInt8] { [UInt8(value >> 8 & 0xff), UInt8(value & 0xff)] }
        func be32(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8(value >> (24 - 8 * $0) & 0xff) } }
        func address(_ text: String) -> [UInt8] { text.split(separator: ".").map { UInt8($0)! } }
        let tcp =
            be16(Int(sourcePort)) + be16(Int(destinationPort)) + be32(initialSequence &+ sequence) + be32(0)
            + [0x50, flags] + be16(65535) + [0, 0, 0, 0] + payload
        let ip =
            [0x45, 0] + be16(20 + tcp.count) + [0, 1, 0x40, 0, 64, 6, 0, 0] + address(from) + address(to)
        let ethernet: [UInt8] = [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00]
        return ethernet + ip + tcp
    }

    /// A little-endian pcap file (link type Ethernet), one record per frame.
    static func pcap(_ frames: [[UInt8]]) -> [UInt8] {
        func le32(_ value: Int) -> [UInt8] { (0..<4).map { UInt8(value >> (8 * $0) & 0xff) } }
        var file = le32(0xa1b2_c3d4) + [2, 0, 4, 0] + le32(0) + le32(0) + le32(65535) + le32(1)
        for (index, frame) in frames.enumerated() {
            file += le32(1_700_000_000) + le32(index * 1000) + le32(frame.count) + le32(frame.count)
            file += frame
        }
        return file
    }
}
