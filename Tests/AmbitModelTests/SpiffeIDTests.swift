import AmbitModel
import Testing

@Suite struct SpiffeIDTests {
    @Test func parsesAndFormats() throws {
        let id = try SpiffeID(parsing: "spiffe://cluster.local/ns/demo/sa/client")
        #expect(id.trustDomain == "cluster.local")
        #expect(id.namespace == "demo")
        #expect(id.serviceAccount == "client")
        #expect(id.uri == "spiffe://cluster.local/ns/demo/sa/client")
        #expect(id.principal == "cluster.local/ns/demo/sa/client")
        #expect(
            try SpiffeID(trustDomain: "example.org", namespace: "a", serviceAccount: "b").uri
                == "spiffe://example.org/ns/a/sa/b"
        )
    }

    @Test(arguments: [
        ("http://cluster.local/ns/a/sa/b", "must start with \"spiffe://\""),
        ("spiffe://cluster.local", "has no path"),
        ("spiffe:///ns/a/sa/b", "trust domain is empty"),
        ("spiffe://Cluster.local/ns/a/sa/b", "contains 'C'"),
        ("spiffe://cluster.local:443/ns/a/sa/b", "contains ':'"),
        ("spiffe://user@cluster.local/ns/a/sa/b", "contains '@'"),
        ("spiffe://cluster.local/ns/a/sa/b/", "path must be exactly"),
        ("spiffe://cluster.local/ns/a/sa", "path must be exactly"),
        ("spiffe://cluster.local/ns/a/sa/b/extra", "path must be exactly"),
        ("spiffe://cluster.local/namespace/a/sa/b", "path must be exactly"),
        ("spiffe://cluster.local/ns//sa/b", "namespace is empty"),
        ("spiffe://cluster.local/ns/a/sa/", "service account is empty"),
        ("spiffe://cluster.local/ns/../sa/b", "must not be \"..\""),
        ("spiffe://cluster.local/ns/a%20b/sa/b", "contains '%'"),
        ("spiffe://cluster.local/ns/a/sa/b?x=1", "contains '?'"),
        ("spiffe://cluster.local/ns/a b/sa/b", "contains byte 0x20"),
    ])
    func rejectsMalformed(text: String, reason: String) {
        #expect {
            try SpiffeID(parsing: text)
        } throws: { error in
            guard let error = error as? SpiffeIDError else { return false }
            return error.text == text && error.reason.contains(reason)
                && error.description.hasPrefix("invalid SPIFFE ID \"\(text)\": ")
        }
    }

    @Test func comparesByURI() throws {
        let a = try SpiffeID(parsing: "spiffe://cluster.local/ns/a/sa/x")
        let b = try SpiffeID(parsing: "spiffe://cluster.local/ns/b/sa/x")
        #expect(a < b)
        #expect([b, a].sorted() == [a, b])
    }
}
