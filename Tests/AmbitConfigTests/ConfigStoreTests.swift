import AmbitConfig
import AmbitModel
import AmbitTestSupport
import Foundation
import Logging
import Testing

@Suite struct ConfigStoreTests {
    static func objects(_ documents: [String]) throws -> [ObjectKey: ManifestObject] {
        let decoded = try ManifestDecoder().decode(Manifests.join(documents)).objects
        return Dictionary(uniqueKeysWithValues: decoded.map { ($0.key, $0) })
    }

    @Test func reportsAddedUpdatedRemovedAndNotifies() async throws {
        let store = ConfigStore()
        let changes = store.changes()
        var iterator = changes.makeAsyncIterator()

        let first = try #require(
            store.replaceAll(with: Self.objects([Manifests.pod("a", ip: "10.0.0.1"), Manifests.namespace("x")]))
        )
        #expect(first.added.map(\.description) == ["Namespace x", "Pod default/a"])
        #expect(first.current.version == 1)
        #expect(store.snapshot.workload(at: try IPAddress(parsing: "10.0.0.1"))?.name == "a")

        let same = try Self.objects([Manifests.pod("a", ip: "10.0.0.1"), Manifests.namespace("x")])
        #expect(store.replaceAll(with: same) == nil)

        let second = try #require(store.replaceAll(with: Self.objects([Manifests.pod("a", ip: "10.0.0.2")])))
        #expect(second.updated.map(\.description) == ["Pod default/a"])
        #expect(second.removed.map(\.description) == ["Namespace x"])
        #expect(second.touches(.pod) && second.touches(.namespace) && !second.touches(.service))
        #expect(second.previous.version == 1 && second.current.version == 2)

        let seen1 = await iterator.next()
        let seen2 = await iterator.next()
        #expect(seen1?.current.version == 1)
        #expect(seen2?.current.version == 2)
        store.finish()
        #expect(await iterator.next() == nil)
    }
}

@Suite struct ManifestDirectorySourceTests {
    static func quietLogger() -> Logger {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        return logger
    }

    @Test func loadsReloadsAndKeepsLastGoodState() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try directory.write("ns.yaml", Manifests.namespace("shop", labels: ["istio.io/dataplane-mode": "ambient"]))
        try directory.write("apps/web.yml", Manifests.pod("web", namespace: "shop", ip: "10.0.0.1"))
        try directory.write(".hidden.yaml", "not: [valid")
        try directory.write("README.md", "ignored")
        let store = ConfigStore()
        let source = ManifestDirectorySource(directory: directory.path, store: store, logger: Self.quietLogger())

        let first = try source.reload()
        #expect(first.errors.isEmpty)
        #expect(first.fileCount == 2)
        #expect(first.objectCount == 2)
        #expect(store.snapshot.workload(at: try IPAddress(parsing: "10.0.0.1"))?.enrollment.isEnrolled == true)

        // A bad edit is rejected with file, line, object and field; the old pod stays.
        try directory.write("apps/web.yml", Manifests.pod("web", namespace: "shop", ip: "10.0.0.999"))
        let bad = try source.reload()
        #expect(bad.change == nil)
        #expect(
            bad.errors.map(\.description) == [
                "\(directory.path)/apps/web.yml:12: Pod shop/web: status.podIP: \"10.0.0.999\" is not a valid IPv4 or IPv6 address"
            ]
        )
        #expect(store.snapshot.workload(at: try IPAddress(parsing: "10.0.0.1"))?.name == "web")

        // Other files still apply while one is bad.
        try directory.write("apps/db.yaml", Manifests.pod("db", namespace: "shop", ip: "10.0.0.2"))
        let mixed = try source.reload()
        #expect(mixed.change?.added.map(\.description) == ["Pod shop/db"])
        #expect(mixed.errors.count == 1)

        // Fixing the file applies it.
        try directory.write("apps/web.yml", Manifests.pod("web", namespace: "shop", ip: "10.0.0.3"))
        let fixed = try source.reload()
        #expect(fixed.errors.isEmpty)
        #expect(fixed.change?.updated.map(\.description) == ["Pod shop/web"])
        #expect(store.snapshot.workload(at: try IPAddress(parsing: "10.0.0.3"))?.name == "web")
        #expect(store.snapshot.workload(at: try IPAddress(parsing: "10.0.0.1")) == nil)

        // Removing a file removes its objects.
        try directory.delete("apps/db.yaml")
        #expect(try source.reload().change?.removed.map(\.description) == ["Pod shop/db"])
    }

    @Test func rejectsAFileThatRedefinesAnObject() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try directory.write("a.yaml", Manifests.pod("web", ip: "10.0.0.1"))
        try directory.write(
            "b.yaml",
            Manifests.join([Manifests.namespace("extra"), Manifests.pod("web", ip: "10.0.0.2")])
        )
        let store = ConfigStore()
        let report = try ManifestDirectorySource(directory: directory.path, store: store, logger: Self.quietLogger())
            .reload()
        #expect(
            report.errors.map(\.description) == [
                "\(directory.path)/b.yaml: Pod default/web: already defined in \(directory.path)/a.yaml, which keeps it; this file is rejected (its last good state stays in force) until the clash is resolved"
            ]
        )
        #expect(store.snapshot.namespaces["extra"] == nil)
        #expect(store.snapshot.workload(at: try IPAddress(parsing: "10.0.0.1"))?.name == "web")
    }

    @Test func missingDirectoryIsAnError() {
        let source = ManifestDirectorySource(
            directory: "/nonexistent/ambit",
            store: ConfigStore(),
            logger: Self.quietLogger()
        )
        #expect(throws: ManifestError(file: "/nonexistent/ambit", message: "manifest directory does not exist")) {
            try source.reload()
        }
    }

    /// The watcher applies an edit and tells subscribers. (How fast is the watcher's poll interval, a
    /// setting; a wall-clock bound here failed under a loaded CI run, so no timing is asserted.)
    @Test func watchesForChanges() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try directory.write("pods.yaml", Manifests.pod("a", ip: "10.0.0.1"))
        let store = ConfigStore()
        let source = ManifestDirectorySource(directory: directory.path, store: store, logger: Self.quietLogger())
        let changes = store.changes()
        let watcher = Task { try await source.run() }
        defer { watcher.cancel() }
        var iterator = changes.makeAsyncIterator()
        #expect(await iterator.next()?.added.map(\.description) == ["Pod default/a"])

        // Same size, rewritten immediately: only content comparison can tell.
        try directory.write("pods.yaml", Manifests.pod("a", ip: "10.0.0.2"))
        let change = await iterator.next()
        #expect(change?.updated.map(\.description) == ["Pod default/a"])
        #expect(store.snapshot.workload(at: try IPAddress(parsing: "10.0.0.2"))?.name == "a")
    }
}
