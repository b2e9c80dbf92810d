public import AmbitModel
import Foundation
public import Logging
public import ServiceLifecycle
import Synchronization

/// Feeds a ``ConfigStore`` from a directory of YAML/JSON manifests and keeps it current.
///
/// Files are applied whole: a file with a bad document is rejected with an error naming file,
/// line, object and field, and the objects it last contributed stay in force ("last good
/// state"). A removed file removes its objects. Sub-directories are read too; hidden entries
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

    private struct FileState: Sendable {
        var signature: FileSignature
        var contents: [UInt8]
        /// The objects of the last version that decoded cleanly.
        var objects: [ManifestObject]
        var warnings: [ManifestWarning]
        var error: ManifestError?
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
                    let result = try decoder.decode(String(decoding: contents, as: UTF8.self), file: path)
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

            // Merge; a file that redefines an object another (earlier) file defines is rejected.
            var merged: [ObjectKey: ManifestObject] = [:]
            var owners: [ObjectKey: String] = [:]
            for path in cache.keys.sorted() {
                let state = cache[path]!
                if let error = state.error { report.errors.append(error) }
                report.warnings += state.warnings
                if let clash = state.objects.first(where: { owners[$0.key] != nil }) {
                    let error = ManifestError(
                        file: path,
                        object: clash.key.description,
                        message:
                            "already defined in \(owners[clash.key]!); this file is ignored until the clash is resolved"
                    )
                    report.errors.append(error)
                    continue
                }
                for object in state.objects {
                    merged[object.key] = object
                    owners[object.key] = path
                }
            }
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

    /// Every manifest file under `directory`, sorted, following symlinks and skipping hidden entries.
    static func manifestFiles(in directory: String) throws(ManifestError) -> [String] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) else {
            throw ManifestError(file: directory, message: "manifest directory does not exist")
        }
        guard isDirectory.boolValue else {
            throw ManifestError(file: directory, message: "not a directory")
        }
        var result: [String] = []
        var pending = [directory]
        var visited: Set<String> = []
        while let current = pending.popLast() {
            let resolved = (current as NSString).resolvingSymlinksInPath
            guard visited.insert(resolved).inserted else { continue }  // symlink loops
            let entries: [String]
            do {
                entries = try FileManager.default.contentsOfDirectory(atPath: current)
            } catch {
                throw ManifestError(file: current, message: "cannot list directory (check its permissions)")
            }
            for entry in entries where !entry.hasPrefix(".") {
                let path = current.hasSuffix("/") ? current + entry : current + "/" + entry
                var entryIsDirectory: ObjCBool = false
                guard FileManager.default.fileExists(atPath: path, isDirectory: &entryIsDirectory) else { continue }
                if entryIsDirectory.boolValue {
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
