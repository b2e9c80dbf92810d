import AmbitYAML

/// Where a field sits in a document, printed the way `kubectl explain` names fields:
/// `spec.ports[0].targetPort`, `metadata.labels["istio.io/dataplane-mode"]`.
struct FieldPath: Hashable, Sendable, CustomStringConvertible {
    private(set) var description: String

    static let root = FieldPath(description: "")

    func appending(key: String) -> FieldPath {
        let plain =
            !key.isEmpty
            && key.utf8.allSatisfy { byte in
                (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a)
                    || byte == 0x5f
            }
        if plain {
            return FieldPath(description: description.isEmpty ? key : "\(description).\(key)")
        }
        return FieldPath(description: "\(description)[\"\(key)\"]")
    }

    func appending(index: Int) -> FieldPath {
        FieldPath(description: "\(description)[\(index)]")
    }
}

/// A field that is missing, of the wrong type or with a bad value.
struct FieldError: Error, Sendable {
    let path: FieldPath
    let line: Int?
    let message: String
}

/// A node of a parsed YAML document together with its path, so every error names its field.
/// Readers are strict about types: a number where a string belongs is an error (as in
/// Kubernetes), never silently converted.
struct YAMLValue {
    let node: YAMLNode
    let path: FieldPath

    var line: Int? { node.mark?.line }

    /// The YAML 1.1 type of a scalar (`int`, `bool`, `str`, ...), as Kubernetes' YAML reader sees it.
    var tagName: YAMLTag { node.resolvedTag }

    func error(_ message: String) -> FieldError {
        FieldError(path: path, line: line, message: message)
    }

    var isNull: Bool {
        if case .scalar(let scalar) = node, scalar.style == .plain, tagName == .null {
            return true
        }
        return false
    }

    /// What the node holds, for error messages: `a string ("x")`, `an integer (8080)`, `a list`, ...
    var kindDescription: String {
        switch node {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .scalar(let scalar):
            switch tagName {
            case .null: return "null"
            case .bool: return "a boolean (\(scalar.string))"
            case .int: return "an integer (\(scalar.string))"
            case .float: return "a number (\(scalar.string))"
            default: return "a string (\"\(scalar.string)\")"
            }
        }
    }

    func mapping() throws(FieldError) -> YAMLMapping {
        guard case .mapping(let mapping) = node else {
            throw error("expected a mapping, got \(kindDescription)")
        }
        var keys: [String] = []
        var values: [String: YAMLValue] = [:]
        for (keyNode, valueNode) in mapping.pairs {
            guard case .scalar(let keyScalar) = keyNode else {
                throw error("mapping keys must be strings")
            }
            let key = keyScalar.string
            let child = YAMLValue(node: valueNode, path: path.appending(key: key))
            guard values[key] == nil else {
                throw child.error("duplicate key \"\(key)\"")
            }
            keys.append(key)
            values[key] = child
        }
        return YAMLMapping(value: self, keys: keys, values: values)
    }

    func sequence() throws(FieldError) -> [YAMLValue] {
        guard case .sequence(let sequence) = node else {
            throw error("expected a list, got \(kindDescription)")
        }
        return sequence.items.enumerated().map { YAMLValue(node: $0.element, path: path.appending(index: $0.offset)) }
    }

    /// A string scalar. Plain scalars that YAML reads as numbers, booleans or null are refused:
    /// Kubernetes refuses them too, and quoting is the fix.
    func string() throws(FieldError) -> String {
        guard case .scalar(let scalar) = node else {
            throw error("expected a string, got \(kindDescription)")
        }
        if scalar.style == .plain {
            switch tagName {
            case .int, .float, .bool, .null:
                // The hint is for YAML text, where quoting fixes it; JSON's types are explicit.
                let hint = scalar.tag == nil ? "; quote it to make it a string" : ""
                throw error("expected a string, got \(kindDescription)\(hint)")
            default: break
            }
        }
        return scalar.string
    }

    /// A non-empty string.
    func nonEmptyString() throws(FieldError) -> String {
        let value = try string()
        guard !value.isEmpty else { throw error("must not be empty") }
        return value
    }

    func integer<T: FixedWidthInteger>(_ type: T.Type = T.self, in range: ClosedRange<T>) throws(FieldError) -> T {
        guard case .scalar(let scalar) = node, scalar.style == .plain, tagName == .int else {
            throw error("expected an integer, got \(kindDescription)")
        }
        guard let value = T(scalar.string), range.contains(value) else {
            throw error("\(scalar.string) is out of range \(range.lowerBound)...\(range.upperBound)")
        }
        return value
    }

    func port() throws(FieldError) -> UInt16 {
        try integer(UInt16.self, in: 1...65535)
    }

    func bool() throws(FieldError) -> Bool {
        guard case .scalar(let scalar) = node, scalar.style == .plain, let value = node.bool else {
            throw error("expected true or false, got \(kindDescription)")
        }
        return value
    }

    func number() throws(FieldError) -> Double {
        guard case .scalar(let scalar) = node, scalar.style == .plain,
            tagName == .int || tagName == .float, let value = Double(scalar.string)
        else {
            throw error("expected a number, got \(kindDescription)")
        }
        return value
    }

    /// A list of strings.
    func strings() throws(FieldError) -> [String] {
        var result: [String] = []
        for item in try sequence() {
            result.append(try item.string())
        }
        return result
    }

    /// A mapping of strings to strings, such as labels and annotations.
    func stringMap() throws(FieldError) -> [String: String] {
        let mapping = try mapping()
        var result: [String: String] = [:]
        for key in mapping.keys {
            result[key] = try mapping.values[key]!.string()
        }
        return result
    }

    /// Applies `transform` to the string, turning its error into a field error.
    func parsed<T>(_ transform: (String) throws -> T) throws(FieldError) -> T {
        let text = try string()
        do {
            return try transform(text)
        } catch {
            throw self.error("\(error)")
        }
    }

    /// Applies `transform` to each element of a list.
    func list<T>(_ transform: (YAMLValue) throws(FieldError) -> T) throws(FieldError) -> [T] {
        var result: [T] = []
        for item in try sequence() {
            result.append(try transform(item))
        }
        return result
    }
}

/// A YAML mapping with its keys in document order.
struct YAMLMapping {
    let value: YAMLValue
    let keys: [String]
    let values: [String: YAMLValue]

    /// The value at `key`; `nil` when absent or null.
    subscript(key: String) -> YAMLValue? {
        guard let child = values[key], !child.isNull else { return nil }
        return child
    }

    func required(_ key: String) throws(FieldError) -> YAMLValue {
        guard let child = self[key] else {
            throw FieldError(path: value.path.appending(key: key), line: value.line, message: "is required")
        }
        return child
    }

    /// Refuses keys Ambit does not know where a typo would change meaning (policy rules, route
    /// matches): an ALLOW rule with a misspelled `principles` would otherwise allow everyone.
    func rejectUnknownKeys(_ known: Set<String>) throws(FieldError) {
        for key in keys where !known.contains(key) {
            let expected = known.sorted().joined(separator: ", ")
            throw values[key]!.error("unknown field \"\(key)\" (expected one of: \(expected))")
        }
    }
}
