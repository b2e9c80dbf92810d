import AmbitYAML

/// Strict reading of a YAML tree: every error names the file, the line and the key path
/// (`lab.yaml:14: pods[1].labels: expected a mapping of strings`), and unknown keys are errors, not ignored.
struct LabFileReader {
    let file: String

    func error(_ node: YAMLNode?, _ path: String, _ message: String) -> LabError {
        let location = node?.mark.map { "\(file):\($0.line)" } ?? file
        return LabError(path.isEmpty ? "\(location): \(message)" : "\(location): \(path): \(message)")
    }

    /// The entries of a mapping node, keyed by name, after checking that every key is one of `known`.
    func mapping(_ node: YAMLNode, _ path: String, known: [String]) throws -> [String: YAMLNode] {
        guard let mapping = node.mapping else {
            throw error(node, path, "expected a mapping with keys \(known.joined(separator: ", "))")
        }
        var entries: [String: YAMLNode] = [:]
        for (key, value) in mapping.pairs {
            guard let name = key.scalar?.string else { throw error(key, path, "keys must be plain strings") }
            let keyPath = Self.join(path, name)
            guard known.contains(name) else {
                throw error(key, keyPath, "unknown key \"\(name)\" (known keys: \(known.joined(separator: ", ")))")
            }
            guard entries[name] == nil else { throw error(key, keyPath, "duplicate key \"\(name)\"") }
            // An explicit `key:` with no value counts as absent.
            if !value.isNull { entries[name] = value }
        }
        return entries
    }

    func string(_ node: YAMLNode, _ path: String) throws -> String {
        guard let scalar = node.scalar else { throw error(node, path, "expected a string") }
        return scalar.string
    }

    func int(_ node: YAMLNode, _ path: String) throws -> Int {
        guard node.scalar != nil, let value = node.int else { throw error(node, path, "expected an integer") }
        return value
    }

    func bool(_ node: YAMLNode, _ path: String) throws -> Bool {
        guard node.scalar != nil, let value = node.bool else { throw error(node, path, "expected true or false") }
        return value
    }

    func sequence(_ node: YAMLNode, _ path: String) throws -> [YAMLNode] {
        guard let sequence = node.sequence else { throw error(node, path, "expected a list") }
        return sequence
    }

    func stringMap(_ node: YAMLNode, _ path: String) throws -> [String: String] {
        guard let mapping = node.mapping else { throw error(node, path, "expected a mapping of strings to strings") }
        var result: [String: String] = [:]
        for (key, value) in mapping.pairs {
            guard let name = key.scalar?.string, !name.isEmpty else {
                throw error(key, path, "keys must be non-empty strings")
            }
            guard let text = value.scalar?.string else {
                throw error(value, Self.join(path, name), "expected a string value")
            }
            guard result[name] == nil else { throw error(key, Self.join(path, name), "duplicate key \"\(name)\"") }
            result[name] = text
        }
        return result
    }

    static func join(_ path: String, _ key: String) -> String {
        path.isEmpty ? key : "\(path).\(key)"
    }
}
