import AmbitHBONE
import AmbitModel
import NIOHPACK
import Testing

@Suite struct ConnectRequestValidatorTests {
    static func headers(_ pairs: [(String, String)]) -> HPACKHeaders {
        HPACKHeaders(pairs)
    }

    @Test func acceptsCONNECTWithIPAuthority() throws {
        let outcome = ConnectRequestValidator.validate(
            Self.headers([
                (":method", "CONNECT"), (":authority", "10.0.0.5:8080"),
                ("forwarded", "for=\"10.0.0.9:40000\";host=web.shop.svc.cluster.local"),
                ("baggage", "k8s.namespace.name=shop"),
                ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            ])
        )
        guard case .valid(let authority, let headers) = outcome else {
            Issue.record("rejected: \(outcome)")
            return
        }
        #expect(authority.description == "10.0.0.5:8080")
        #expect(headers.forwardedFor?.description == "10.0.0.9:40000")
        #expect(headers.forwardedHost == "web.shop.svc.cluster.local")
        #expect(headers.baggage == "k8s.namespace.name=shop")
        #expect(headers.traceparent == "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    }

    @Test func requestsInATracedTunnelGetTheirOwnSpanInTheSameTrace() throws {
        let parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        let first = HBONEHeaders.childTraceparent(of: parent)
        let second = HBONEHeaders.childTraceparent(of: parent)
        for child in [first, second] {
            #expect(HBONEHeaders.isValidTraceparent(child), "\(child)")
            #expect(child.hasPrefix("00-0af7651916cd43dd8448eb211c80319c-"))
            #expect(child.hasSuffix("-01"))
            #expect(!child.contains("b7ad6b7169203331"))
        }
        #expect(first != second)
        // No parent, or a malformed one: a new trace.
        for missing in [nil, "00-zz-b7ad6b7169203331-01"] {
            let fresh = HBONEHeaders.childTraceparent(of: missing)
            #expect(HBONEHeaders.isValidTraceparent(fresh))
            #expect(!fresh.contains("0af7651916cd43dd8448eb211c80319c"))
        }
    }

    @Test(arguments: [
        (
            [(":method", "GET"), (":path", "/"), (":authority", "10.0.0.5:80")],
            "method GET is not allowed; HBONE accepts CONNECT only"
        ),
        ([(":authority", "10.0.0.5:80")], "missing :method"),
        ([(":method", "CONNECT")], "missing :authority"),
        (
            [(":method", "CONNECT"), (":authority", "web.shop:80")],
            ":authority invalid address \"web.shop:80\": \"web.shop\" is not an IP address"
        ),
        (
            [(":method", "CONNECT"), (":authority", "10.0.0.5")],
            ":authority invalid address \"10.0.0.5\": expected address:port (IPv6 addresses go in brackets)"
        ),
        (
            [(":method", "CONNECT"), (":protocol", "websocket"), (":authority", "10.0.0.5:80")],
            "extended CONNECT (:protocol) is not HBONE"
        ),
    ])
    func rejectsWith400(pairs: [(String, String)], reason: String) {
        #expect(ConnectRequestValidator.validate(Self.headers(pairs)) == .reject(status: 400, reason: reason))
    }
}

@Suite struct HBONEHeadersTests {
    @Test func formatsAndParsesForwarded() throws {
        let v4 = HBONEHeaders(forwardedFor: try IPEndpoint(parsing: "10.1.2.3:4567"))
        #expect(v4.forwardedValue == "for=\"10.1.2.3:4567\"")
        let v6 = HBONEHeaders(
            forwardedFor: try IPEndpoint(parsing: "[fd00::1]:80"),
            forwardedHost: "a.b.svc.cluster.local"
        )
        #expect(v6.forwardedValue == "for=\"[fd00::1]:80\";host=a.b.svc.cluster.local")
        let parsed = HBONEHeaders.parseForwarded("for=\"[fd00::1]:80\";host=a.b.svc.cluster.local, for=1.2.3.4:5")
        #expect(parsed.for?.description == "[fd00::1]:80")
        #expect(parsed.host == "a.b.svc.cluster.local")
        #expect(HBONEHeaders.parseForwarded("for=unknown").for == nil)
    }

    @Test func generatesValidTraceparents() {
        var seen: Set<String> = []
        for _ in 0..<100 {
            let value = HBONEHeaders.newTraceparent()
            #expect(HBONEHeaders.isValidTraceparent(value), "\(value)")
            #expect(value.hasPrefix("00-") && value.hasSuffix("-00"))
            seen.insert(value)
        }
        #expect(seen.count == 100)
        struct Fixed: RandomNumberGenerator {
            var value: UInt64
            mutating func next() -> UInt64 { value }
        }
        var pattern = Fixed(value: 0x0123_4567_89ab_cdef)
        #expect(
            HBONEHeaders.newTraceparent(using: &pattern)
                == "00-0123456789abcdef0123456789abcdef-0123456789abcdef-00"
        )
        var zeros = Fixed(value: 0)
        #expect(
            HBONEHeaders.newTraceparent(using: &zeros)
                == "00-00000000000000000000000000000001-0000000000000001-00",
            "all-zero ids are invalid"
        )
        #expect(!HBONEHeaders.isValidTraceparent("00-00000000000000000000000000000000-b7ad6b7169203331-01"))
        #expect(!HBONEHeaders.isValidTraceparent("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"))
        #expect(!HBONEHeaders.isValidTraceparent("00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01"))
    }

    @Test func buildsBaggage() {
        #expect(
            HBONEHeaders.baggage(namespace: "shop", workload: "web", service: "web", version: "v1")
                == "k8s.namespace.name=shop,k8s.deployment.name=web,service.name=web,service.version=v1,k8s.cluster.name=Kubernetes"
        )
        #expect(
            HBONEHeaders.baggage(namespace: "shop", workload: nil, service: nil, version: nil, cluster: nil)
                == "k8s.namespace.name=shop"
        )
    }
}
