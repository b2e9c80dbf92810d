public import AmbitModel
import FoundationEssentials
import Glibc
public import Logging
public import ServiceLifecycle
import Synchronization

/// Feeds a ``ConfigStore`` from a directory of YAML/JSON manifests and keeps it current.
///
/// Files are applied whole: a file with a bad document is rejected with an error naming file,
/// line, object and field, and the objects it last contributed stay in force ("last good
/// state"). A removed file removes its objects. Two files never share an object: the file whose
/// object is in force keeps it, and a file that would define it too is rejected (naming both
/// files) while its own last good state stays, so a clash can never remove an object — a DENY
/// policy least of all. Sub-directories are read too; hidden entries
/// (editor swap files, Kubernetes' `..data` ConfigMap internals) are skipped, symlinks followed.
///
/// Changes are found by polling `stat` every `pollInterval` (250 ms by default, well inside the
/// one-second promise). A file is re-read when its size, inode or times change, and also while
/// its modification time is within two seconds of now: a rewrite inside the file system's
/// timestamp granularity would otherwise go unseen (git calls these "racily clean" files).
public final class ManifestDirectorySource: Sendable, ServiceLifecycle.Service {
    /// What one reload found.
    public struct Report: Sendable {
        /// Files currently rejected, with why (their last good objects stay in force).
        public var errors: [ManifestError] = []
        public var warnings: [ManifestWarning] = []
        public var change: ConfigChange?
        public var fileCount = 0
        public var objectCount = 0
    }

    public let directory: String
    public let pollInterval: Duration
    private let store: ConfigStore
    private let logger: Logger
    private let decoder = ManifestDecoder()
    private let files = Mutex<[String: FileState]>([:])
    private let rejected = Mutex<[String]>([])

    /// The files rejected by the last reload (bad documents, clashes), with why.
    public var problems: [String] { rejected.withLock { $0 } }

    private struct FileState: Sendable {
        var signature: FileSignature
        var contents: [UInt8]
        /// The objects of the last version that decoded cleanly.
        var objects: [ManifestObject]
        var warnings: [ManifestWarning]
        var error: ManifestError?
        /// The objects of this file in force now: `objects`, unless they clash with another file's.
        var applied: [ManifestObject] = []
        /// Why `objects` is not in force (another file defines one of them first).
        var clash: ManifestError?
    }

    public init(directory: String, store: ConfigStore, pollInterval: Duration = .milliseconds(250), logger: Logger) {
        self.directory = directory
        self.store = store
        self.pollInterval = pollInterval
        self.logger = logger
    }

    /// Reads the directory once and applies what changed. Throws only when the directory itself
    /// cannot be read; problems in files are reported, not thrown.
    @discardableResult
    public func reload() throws(ManifestError) -> Report {
        let paths = try Self.manifestFiles(in: directory)
        let now = Date().timeIntervalSince1970
        return files.withLock { cache in
            var report = Report()
            var seen: Set<String> = []
            for path in paths {
                seen.insert(path)
                guard let signature = FileSignature(path: path) else { continue }  // vanished meanwhile
                if let cached = cache[path], cached.signature == signature, now - signature.modified > 2 {
                    continue
                }
                guard let contents = FileManager.default.contents(atPath: path).map(Array.init) else {
                    let error = ManifestError(file: path, message: "cannot read file (check its permissions)")
                    cache[path, default: FileState(signature: signature, contents: [], objects: [], warnings: [])]
                        .error = error
                    continue
                }
                if var cached = cache[path], cached.contents == contents {
                    cached.signature = signature
                    cache[path] = cached
                    continue
                }
                var state = cache[path] ?? FileState(signature: signature, contents: [], objects: [], warnings: [])
                state.signature = signature
                state.contents = contents
                do throws(ManifestError) {
                    let result = try decoder.decode(try Self.text(contents, file: path), file: path)
                    state.objects = result.objects
                    state.warnings = result.warnings
                    state.error = nil
                    for warning in result.warnings { logger.warning("\(warning)") }
                } catch {
                    state.error = error
                    let kept = state.objects.count
                    logger.error("rejected manifest, keeping its last good state (\(kept) objects): \(error)")
                }
                cache[path] = state
            }
            for path in cache.keys where !seen.contains(path) {
                cache.removeValue(forKey: path)
                logger.info("manifest removed: \(path)")
            }

            // Merge. What is in force stays: every file's applied objects first, then each file moves to
            // its newest version unless that would take an object another file has in force.
            var owners: [ObjectKey: String] = [:]
            for path in cache.keys.sorted() {
                for object in cache[path]!.applied where owners[object.key] == nil { owners[object.key] = path }
            }
            for path in cache.keys.sorted() {
                var state = cache[path]!
                let wanted = state.objects.map(\.key)
                if let taken = wanted.first(where: { owners[$0] != nil && owners[$0] != path }) {
                    let clash = ManifestError(
                        file: path,
                        object: taken.description,
                        message: "already defined in \(owners[taken]!), which keeps it; this file is rejected "
                            + "(its last good state stays in force) until the clash is resolved"
                    )
                    if state.clash != clash { logger.error("manifest clash: \(clash)") }
                    state.clash = clash
                } else {
                    for object in state.applied where owners[object.key] == path { owners[object.key] = nil }
                    for key in wanted { owners[key] = path }
                    state.applied = state.objects
                    if state.clash != nil { logger.info("manifest clash resolved", metadata: ["file": "\(path)"]) }
                    state.clash = nil
                }
                cache[path] = state
            }
            var merged: [ObjectKey: ManifestObject] = [:]
            for path in cache.keys.sorted() {
                let state = cache[path]!
                if let error = state.error { report.errors.append(error) }
                if let clash = state.clash { report.errors.append(clash) }
                report.warnings += state.warnings
                for object in state.applied where owners[object.key] == path { merged[object.key] = object }
            }
            rejected.withLock { $0 = report.errors.map(\.description) }
            report.fileCount = cache.count
            report.objectCount = merged.count
            report.change = store.replaceAll(with: merged)
            if let change = report.change {
                logger.info(
                    "config applied",
                    metadata: [
                        "version": "\(change.current.version)", "added": "\(change.added.count)",
                        "updated": "\(change.updated.count)", "removed": "\(change.removed.count)",
                    ]
                )
                for warning in change.current.warnings where !change.previous.warnings.contains(warning) {
                    logger.warning("\(warning)")
                }
            }
            return report
        }
    }

    /// Polls until cancelled or told to shut down gracefully.
    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    try self.reload()
                } catch {
                    self.logger.error("\(error)")
                }
                do {
                    try await Task.sleep(for: self.pollInterval)
                } catch {
                    return
                }
            }
        }
    }

    /// A file's text: refused when larger than ``ManifestDecoder/maximumFileBytes`` or not valid UTF-8 (a
    /// replacement character in a principal would silently change what a policy matches).
    static func text(_ contents: [UInt8], file: String) throws(ManifestError) -> String {
        guard contents.count <= ManifestDecoder.maximumFileBytes else {
            throw ManifestError(
                file: file,
                message: "\(contents.count) bytes, more than the limit of \(ManifestDecoder.maximumFileBytes)"
            )
        }
        return try ManifestDecoder.validatedText(contents, file: file)
    }

    /// Every manifest file under `directory`, sorted, following symlinks and skipping hidden entries.
    static func manifestFiles(in directory: String) throws(ManifestError) -> [String] {
        var isDirectory = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) else {
            throw ManifestError(file: directory, message: "manifest directory does not exist")
        }
        guard isDirectory else {
            throw ManifestError(file: directory, message: "not a directory")
        }
        var result: [String] = []
        var pending = [directory]
        var visited: Set<String> = []
        while let current = pending.popLast() {
            let resolved = URL(fileURLWithPath: current).resolvingSymlinksInPath().path
            guard visited.insert(resolved).inserted else { continue }  // symlink loops
            let entries: [String]
            do {
                entries = try FileManager.default.contentsOfDirectory(atPath: current)
            } catch {
                throw ManifestError(file: current, message: "cannot list directory (check its permissions)")
            }
            for entry in entries where !entry.hasPrefix(".") {
                let path = FilePaths.join(current, entry)
                var entryIsDirectory = false
                guard FileManager.default.fileExists(atPath: path, isDirectory: &entryIsDirectory) else { continue }
                if entryIsDirectory {
                    pending.append(path)
                } else if entry.hasSuffix(".yaml") || entry.hasSuffix(".yml") || entry.hasSuffix(".json") {
                    result.append(path)
                }
            }
        }
        return result.sorted()
    }
}

/// The parts of `stat` that change when a file is rewritten or replaced.
struct FileSignature: Hashable, Sendable {
    let inode: UInt64
    let size: Int64
    /// Seconds since the epoch, with nanoseconds.
    let modified: Double
    let changed: Double

    init?(path: String) {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        inode = UInt64(info.st_ino)
        size = Int64(info.st_size)
        modified = Double(info.st_mtim.tv_sec) + Double(info.st_mtim.tv_nsec) / 1e9
        changed = Double(info.st_ctim.tv_sec) + Double(info.st_ctim.tv_nsec) / 1e9
    }
}

extension ManifestDirectorySource: ConfigSource {
    public func start() async throws {
        try reload()
    }

    public func statusDump() -> [String: Any] {
        ["kind": "manifests", "directory": directory]
    }

    public func catchUp(awaiting key: ObjectKey) async {
        _ = try? reload()
    }
}
