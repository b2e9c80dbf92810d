import AmbitWaypoint
import Testing

/// Paths are normalized before policy and routing see them, so escapes, dot segments and
/// doubled slashes cannot walk around a path rule.
@Suite struct RequestTargetTests {
    @Test(arguments: [
        ("/", "/"),
        ("/a/b?x=1", "/a/b?x=1"),
        ("/admin", "/admin"),
        ("/x/../admin", "/admin"),
        ("/x/./admin/", "/x/admin/"),
        ("//admin//users", "/admin/users"),
        ("/%61dmin", "/admin"),
        ("/%2e%2e/admin", "/admin"),
        ("/a/%2E%2E/b", "/b"),
        ("/../../etc", "/etc"),
        ("/a/b/..", "/a/"),
        ("/a/.", "/a/"),
        ("/a/..?q=/../x", "/?q=/../x"),
        ("/files/a%2fb", "/files/a%2Fb"),
        ("/files/a%5cb", "/files/a%5Cb"),
        ("/caf%c3%a9", "/caf%C3%A9"),
        ("/a~b_c-d.e", "/a~b_c-d.e"),
        ("/%7Euser", "/~user"),
        ("/a..b/c.", "/a..b/c."),
    ])
    func normalizes(_ target: String, _ expected: String) throws {
        #expect(try RequestTarget.normalize(target) == expected)
    }

    @Test(arguments: [
        ("/a%zzb", RequestTarget.Problem.badPercentEncoding("/a%zzb")),
        ("/a%2", .badPercentEncoding("/a%2")),
        ("/a%", .badPercentEncoding("/a%")),
        ("admin", .notOriginForm),
        ("http://example.com/admin", .notOriginForm),
        ("", .notOriginForm),
    ])
    func rejects(_ target: String, _ problem: RequestTarget.Problem) {
        #expect(throws: problem) { try RequestTarget.normalize(target) }
    }

    @Test func splitsPathAndQuery() {
        let (path, query) = RequestTarget.split("/a/b?x=1&y")
        #expect(path == "/a/b")
        #expect(query == "?x=1&y")
        #expect(RequestTarget.split("/a").query.isEmpty)
    }
}
