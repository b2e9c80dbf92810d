import AmbitModel
import Testing

@Suite struct IPAddressTests {
    @Test(arguments: [
        ("10.0.0.1", "10.0.0.1"),
        ("0.0.0.0", "0.0.0.0"),
        ("255.255.255.255", "255.255.255.255"),
        ("::", "::"),
        ("::1", "::1"),
        ("fd00::1", "fd00::1"),
        ("FD00:0:0:0:0:0:0:1", "fd00::1"),
        ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
        ("2001:0db8:0000:0000:0000:ff00:0042:8329", "2001:db8::ff00:42:8329"),
        ("1:0:1:0:1:0:1:0", "1:0:1:0:1:0:1:0"),
        ("::ffff:10.1.2.3", "::ffff:10.1.2.3"),
        ("64:ff9b::192.0.2.33", "64:ff9b::c000:221"),
    ])
    func roundTrips(text: String, canonical: String) throws {
        #expect(try IPAddress(parsing: text).description == canonical)
    }

    @Test(arguments: [
        "", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "1.2.3.-4", " 1.2.3.4", "1.2.3.4 ",
        ":::", "1::2::3", "12345::", "fe80::1%eth0", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7", "g::1", "::1.2.3",
        "localhost",
    ])
    func rejects(text: String) {
        #expect {
            try IPAddress(parsing: text)
        } throws: { error in
            (error as? IPAddressError)?.description == "\"\(text)\" is not a valid IPv4 or IPv6 address"
        }
    }

    /// The byte-level IPv4 parser against a plain reading of the rule (split on dots, four octets
    /// of one to three ASCII digits, at most 255, no leading zero), over random strings.
    @Test func ipv4ParsingAgreesWithTheRule() {
        func rule(_ text: String) -> UInt32? {
            let parts = text.split(separator: ".", omittingEmptySubsequences: false)
            guard parts.count == 4 else { return nil }
            var result: UInt32 = 0
            for part in parts {
                let bytes = Array(part.utf8)
                guard (1...3).contains(bytes.count), bytes.allSatisfy({ (48...57).contains($0) }),
                    bytes.count == 1 || bytes[0] != 48, let octet = UInt32(part), octet <= 255
                else { return nil }
                result = result << 8 | octet
            }
            return result
        }
        let alphabet: [Character] =
            Array("0123456789..........") + ["0", "1", "2", "5", " ", "+", "a", "\u{0663}", "\u{FF11}", "\u{301}"]
        var generator = SystemRandomNumberGenerator()
        var disagreements: [String] = []
        for _ in 0..<20000 {
            let length = Int.random(in: 0...16, using: &generator)
            let text = String((0..<length).map { _ in alphabet.randomElement(using: &generator)! })
            let expected = rule(text).map(IPAddress.v4)
            if IPAddress(text) != expected { disagreements.append(text) }
        }
        for text in [
            "1.2.3.4", "0.0.0.0", "255.255.255.255", "1.2.3.04", "1.2.3.400", "1..2.3", "1.2.3.4.", ".1.2.3",
            "1.2.3.4\u{301}", "\u{FF11}.2.3.4", "00.1.2.3", "1.2.3.256", "999.1.1.1", "1.2.3.", "1.2.3", "1.2.3.4.5",
            "", "\u{0663}.1.2.3",
        ]
        where IPAddress(text) != rule(text).map(IPAddress.v4) {
            disagreements.append(text)
        }
        #expect(disagreements.isEmpty, "\(disagreements.prefix(5))")
    }

    @Test func bytesRoundTrip() throws {
        for text in ["10.1.2.3", "fd00::abcd:1", "::ffff:1.2.3.4"] {
            let address = try IPAddress(parsing: text)
            #expect(IPAddress(bytes: address.bytes) == address)
        }
        #expect(try IPAddress(parsing: "1.2.3.4").bytes == [1, 2, 3, 4])
        #expect(IPAddress(bytes: [1, 2, 3]) == nil)
    }

    @Test func loopbackAndOrder() throws {
        #expect(try IPAddress(parsing: "127.0.0.9").isLoopback)
        #expect(try IPAddress(parsing: "::1").isLoopback)
        #expect(try !IPAddress(parsing: "10.0.0.1").isLoopback)
        #expect(try IPAddress(parsing: "10.0.0.2") < IPAddress(parsing: "10.0.0.10"))
        #expect(try IPAddress(parsing: "255.255.255.255") < IPAddress(parsing: "::"))
    }
}

@Suite struct IPCIDRTests {
    @Test(arguments: [
        ("10.0.0.0/8", "10.255.1.2", true),
        ("10.0.0.0/8", "11.0.0.1", false),
        ("10.1.2.3", "10.1.2.3", true),
        ("10.1.2.3", "10.1.2.4", false),
        ("10.1.2.3/24", "10.1.2.200", true),
        ("0.0.0.0/0", "1.2.3.4", true),
        ("0.0.0.0/0", "::1", false),
        ("fd00::/64", "fd00::ffff:1", true),
        ("fd00::/64", "fd00:0:0:1::1", false),
        ("fd00::/72", "fd00::00ff:1:1:1", true),
        ("fd00::/72", "fd00::0100:1:1:1", false),
        ("::/0", "2001:db8::1", true),
        ("::1/128", "::1", true),
        ("::1/128", "::2", false),
    ])
    func contains(cidr: String, address: String, expected: Bool) throws {
        #expect(try IPCIDR(parsing: cidr).contains(IPAddress(parsing: address)) == expected)
    }

    @Test func masksHostBits() throws {
        #expect(try IPCIDR(parsing: "10.1.2.3/16").description == "10.1.0.0/16")
        #expect(try IPCIDR(parsing: "fd00::1:2/112").description == "fd00::1:0/112")
        #expect(try IPCIDR(parsing: "10.1.2.3").description == "10.1.2.3/32")
    }

    @Test(arguments: [
        ("10.0.0.0/33", "prefix length 33 is larger than 32"),
        ("fd00::/129", "prefix length 129 is larger than 128"),
        ("10.0.0.0/", "prefix length \"\" is not a number"),
        ("10.0.0.0/-1", "prefix length \"-1\" is not a number"),
        ("10.0.0/8", "\"10.0.0\" is not a valid IPv4 or IPv6 address"),
        ("banana/8", "\"banana\" is not a valid IPv4 or IPv6 address"),
    ])
    func rejects(text: String, reason: String) {
        #expect {
            try IPCIDR(parsing: text)
        } throws: { error in
            (error as? IPCIDRError)?.description == "invalid CIDR \"\(text)\": \(reason)"
        }
    }
}

@Suite struct IPEndpointTests {
    @Test func parsesBothFamilies() throws {
        #expect(try IPEndpoint(parsing: "10.0.0.1:8080") == IPEndpoint(IPAddress(parsing: "10.0.0.1"), 8080))
        #expect(try IPEndpoint(parsing: "[fd00::1]:15008").description == "[fd00::1]:15008")
        #expect(try IPEndpoint(parsing: "10.0.0.1:80").description == "10.0.0.1:80")
        #expect(try IPEndpoint(parsing: "255.255.255.255:65535").description == "255.255.255.255:65535")
        #expect(try IPEndpoint(parsing: "0.0.0.0:1").description == "0.0.0.0:1")
        #expect(try IPEndpoint(parsing: "10.0.0.1:00080").port == 80)
        #expect(try IPEndpoint(parsing: Substring("x10.20.30.40:15008").dropFirst()).description == "10.20.30.40:15008")
        #expect(IPEndpoint(.v4(0x0A00_0001), 9).description == "10.0.0.1:9")
        #expect(IPEndpoint(.v4(0x0A00_0001), 10000).description == "10.0.0.1:10000")
    }

    @Test(arguments: [
        "10.0.0.1", "10.0.0.1:", "10.0.0.1:0", "10.0.0.1:65536", "10.0.0.1:http", "fd00::1:80", "[fd00::1]",
        "[10.0.0.1]:80", "host:80", "10.0.0.1:+80", "10.0.0.1:000080", "10.0.0.1:80a", "10.0.0.1:\u{FF18}0",
        ":80", "[fd00::1]:", "[fd00::1]80", "10.0.0.1:80:", "1.2.3.4\u{301}:80",
    ])
    func rejects(text: String) {
        #expect(throws: IPEndpointError.self) { try IPEndpoint(parsing: text) }
    }
}
