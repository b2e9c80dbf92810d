import FoundationEssentials

#if canImport(Glibc)
    import Glibc
#endif

/// Everything a lab created, persisted as `lab.json` after every step so `lab down` can undo a half-built lab.
public struct LabRecord: Codable, Sendable {
    public enum Phase: String, Codable, Sendable {
        case building
        case up
        case failed
    }

    public var name: String
    public var phase: Phase
    /// The spec as built; namespace labels follow `lab label`.
    public var spec: LabSpec
    public var labFile: String
    public var binDirectory: String
    public var cniBinDirectory: String
    /// Network namespaces in creation order (removed in reverse).
    public var netns: [String] = []
    public var nodes: [NodeRecord] = []
    public var pods: [PodRecord] = []
    /// The control plane (ambit-ca in its own netns); `nil` without a mesh, or with `ca: local`.
    public var controlPlane: ControlPlaneRecord?

    public struct ControlPlaneRecord: Codable, Sendable {
        public var netns: String
        public var underlayIP: String
        public var ca: ProcessHandle?
        /// `host:port` agents and waypoints send CSRs to.
        public var caAddress: String { "\(underlayIP):\(LabBuilder.caPort)" }
    }

    public struct NodeRecord: Codable, Sendable {
        public var name: String
        public var netns: String
        public var underlayIP: String
        public var podCIDR: String
        public var agent: ProcessHandle?
        /// The node's lab kubelet (``LabKubelet``).
        public var kubelet: ProcessHandle?
    }

    public struct PodRecord: Codable, Sendable {
        public var name: String
        public var namespace: String
        public var node: String
        public var netns: String
        public var containerID: String
        public var uid: String
        public var ip: String?
        /// CNI plugins whose ADD succeeded, in chain order (DEL runs them in reverse).
        public var addedPlugins: [String] = []
        /// The chain's final ADD result (JSON text), passed as `prevResult` on DEL.
        public var cniResult: String?
        public var app: ProcessHandle?

        public var qualifiedName: String { "\(namespace)/\(name)" }
    }

    func pod(matching reference: String) throws -> PodRecord {
        let matches = pods.filter { $0.name == reference || $0.qualifiedName == reference }
        guard let pod = matches.first else {
            let known = pods.map(\.qualifiedName).joined(separator: ", ")
            throw LabError("lab \(name) has no pod \"\(reference)\" (pods: \(known))")
        }
        return pod
    }
}

/// Reads and atomically writes `lab.json`, and finds which labs are up under a state directory.
struct LabRecordStore: Sendable {
    let layout: LabLayout

    func save(_ record: LabRecord) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(try encoder.encode(record), to: layout.recordFile)
    }

    func load() throws -> LabRecord {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: layout.recordFile))
        } catch {
            throw LabError("lab \(layout.name) is not up (no \(layout.recordFile))")
        }
        do {
            return try JSONDecoder().decode(LabRecord.self, from: data)
        } catch {
            throw LabError("\(layout.recordFile) is unreadable (\(error)); `ambitctl lab down --all` cleans up")
        }
    }

    var exists: Bool { FileManager.default.fileExists(atPath: layout.recordFile) }

    /// Names of the labs with a `lab.json` under `stateDirectory`.
    static func labNames(stateDirectory: String) -> [String] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: stateDirectory)) ?? []
        return entries.filter {
            FileManager.default.fileExists(atPath: LabLayout(stateDirectory: stateDirectory, name: $0).recordFile)
        }.sorted()
    }

    /// The lab `name`, or the only lab that is up.
    static func resolve(stateDirectory: String, name: String?) throws -> LabLayout {
        if let name { return LabLayout(stateDirectory: stateDirectory, name: name) }
        let names = labNames(stateDirectory: stateDirectory)
        switch names.count {
        case 0: throw LabError("no lab is up under \(stateDirectory); start one with `ambitctl lab up`")
        case 1: return LabLayout(stateDirectory: stateDirectory, name: names[0])
        default: throw LabError("several labs are up (\(names.joined(separator: ", "))); choose one with --name")
        }
    }
}

/// Write-to-temporary-then-rename, so readers (the agents watching the manifest directory) never see a partial file.
enum AtomicFile {
    static func write(_ data: Data, to path: String) throws {
        let url = URL(fileURLWithPath: path)
        // A dot-prefixed name keeps watchers that only read *.yaml from picking up the temporary file.
        let temporary = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp")
        try data.write(to: temporary)
        guard rename(temporary.path, url.path) == 0 else {
            throw LabError("cannot rename \(temporary.path) to \(path): \(String(cString: strerror(errno)))")
        }
    }

    static func write(_ text: String, to path: String) throws {
        try write(Data(text.utf8), to: path)
    }
}
