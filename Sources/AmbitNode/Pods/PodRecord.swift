import AmbitModel
import FoundationEssentials

/// What the agent keeps on disk for each captured pod, so a restarted agent can restore its
/// capture (docs/protocols.md: pods are never re-created for that).
struct PodRecord: Codable, Hashable, Sendable {
    var uid: String
    var namespace: String
    var name: String
    var ips: [String]
    var netnsPath: String
    var containerID: String?

    var key: ObjectKey { ObjectKey(.pod, namespace: namespace, name: name) }
    var displayName: String { "\(namespace)/\(name)" }
    var addresses: [IPAddress] { ips.compactMap { IPAddress($0) } }
}

/// The on-disk records of captured pods (one JSON file per pod, written atomically).
struct PodRecordStore: Sendable {
    let directory: String

    init(directory: String) throws {
        self.directory = directory
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    /// The records in `directory` without creating it (none when it does not exist).
    init(existing directory: String) {
        self.directory = directory
    }

    private func path(_ uid: String) -> String {
        let safe = uid.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" ? $0 : "_" }
        return "\(directory)/\(String(safe)).json"
    }

    func save(_ record: PodRecord) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try encoder.encode(record).write(to: URL(fileURLWithPath: path(record.uid)), options: .atomic)
    }

    func delete(_ uid: String) {
        try? FileManager.default.removeItem(atPath: path(uid))
    }

    func loadAll() -> (records: [PodRecord], errors: [String]) {
        var records: [PodRecord] = []
        var errors: [String] = []
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            // No directory: nothing recorded yet. Any other failure leaves the records unknown.
            if !FileManager.default.fileExists(atPath: directory) { return ([], []) }
            return ([], ["\(directory): \(error)"])
        }
        for name in names.sorted() where name.hasSuffix(".json") {
            let file = "\(directory)/\(name)"
            do {
                records.append(
                    try JSONDecoder().decode(PodRecord.self, from: Data(contentsOf: URL(fileURLWithPath: file)))
                )
            } catch {
                errors.append("\(file): \(error)")
            }
        }
        return (records, errors)
    }
}
