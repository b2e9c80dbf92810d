/// Path text without Foundation's `NSString` (FoundationEssentials has none): what Ambit needs of
/// `appendingPathComponent` and `deletingLastPathComponent`, with their results.
public enum FilePaths {
    /// `directory/name` with one slash between them; `name` alone when `directory` is empty.
    public static func join(_ directory: String, _ name: String) -> String {
        if directory.isEmpty { return name }
        return directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }

    /// The path without its last component: `/a/b/c` → `/a/b`, `/a/b/` → `/a`, `/a` → `/`, `c` → empty.
    public static func parent(of path: String) -> String {
        var trimmed = Substring(path)
        while trimmed.count > 1, trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        guard let slash = trimmed.lastIndex(of: "/") else { return "" }
        if slash == trimmed.startIndex { return "/" }
        var parent = trimmed[..<slash]
        while parent.count > 1, parent.hasSuffix("/") { parent = parent.dropLast() }
        return String(parent)
    }
}
