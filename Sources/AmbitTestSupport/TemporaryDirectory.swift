import Foundation

/// A directory under the system temporary directory, removed when `remove()` is called.
public struct TemporaryDirectory: Sendable {
    public let path: String

    public init(prefix: String = "ambit-test") throws {
        let template = (NSTemporaryDirectory() as NSString).appendingPathComponent("\(prefix)-XXXXXX")
        var bytes = Array(template.utf8CString)
        guard let result = mkdtemp(&bytes) else {
            throw CocoaError(.fileWriteUnknown)
        }
        path = String(cString: result)
    }

    /// Writes `contents` to `name` (relative), creating intermediate directories.
    @discardableResult
    public func write(_ name: String, _ contents: String) throws -> String {
        let full = (path as NSString).appendingPathComponent(name)
        try FileManager.default.createDirectory(
            atPath: (full as NSString).deletingLastPathComponent,
            withIntermediateDirectories: true
        )
        try Data(contents.utf8).write(to: URL(fileURLWithPath: full))
        return full
    }

    public func delete(_ name: String) throws {
        try FileManager.default.removeItem(atPath: (path as NSString).appendingPathComponent(name))
    }

    public func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}
