extension YAMLNode {
    public var scalar: Scalar? {
        if case .scalar(let scalar) = self { return scalar }
        return nil
    }

    public var mapping: Mapping? {
        if case .mapping(let mapping) = self { return mapping }
        return nil
    }

    public var sequence: [YAMLNode]? {
        if case .sequence(let sequence) = self { return sequence.items }
        return nil
    }

    /// A scalar whose type is null: `~`, `null`, or nothing at all (`key:`).
    public var isNull: Bool { scalar?.resolvedTag == .null }

    /// An integer scalar's value (`8080`, `0x1F`, `0o17`, `017`, `0b101`, `1_000`, `1:30` is 90);
    /// `nil` for anything else, or a value that does not fit.
    public var int: Int? {
        guard let scalar, scalar.resolvedTag == .int else { return nil }
        return Self.integer(scalar.string)
    }

    /// A boolean scalar's value (`true`, `yes`, `on` and their opposites, in three casings).
    public var bool: Bool? {
        guard let scalar, scalar.resolvedTag == .bool else { return nil }
        return ["true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"].contains(scalar.string)
    }

    /// A number scalar's value (an integer or a float); `nil` for anything else.
    public var double: Double? {
        guard let scalar else { return nil }
        switch scalar.resolvedTag {
        case .int: return Self.integer(scalar.string).map(Double.init)
        case .float:
            let text = scalar.string.filter { $0 != "_" }
            switch text.lowercased() {
            case ".inf", "+.inf": return .infinity
            case "-.inf": return -.infinity
            case ".nan": return .nan
            default: return Double(text)
            }
        default: return nil
        }
    }

    /// The document as Swift values, the way a reader of loosely shaped files (a kubeconfig)
    /// wants it: a mapping is `[String: Any]` (keys that are not scalars are left out; a merge key
    /// `<<: *base` adds the entries of the mapping or mappings it names that the mapping does not
    /// have itself), a sequence `[Any]`, scalars `String`, `Int`, `Double` or `Bool` by their type,
    /// and null ``YAMLNull``. Aliases are expanded (``YAMLReader`` bounds how far).
    public var value: Any {
        switch self {
        case .mapping(let mapping):
            var result: [String: Any] = [:]
            var merged: [YAMLNode] = []
            for pair in mapping.pairs {
                guard let key = pair.key.scalar else { continue }
                if key.resolvedTag == .merge {
                    merged += pair.value.sequence ?? [pair.value]
                } else {
                    result[key.string] = pair.value.value
                }
            }
            for source in merged {
                guard let entries = source.value as? [String: Any] else { continue }
                result.merge(entries) { own, _ in own }
            }
            return result
        case .sequence(let sequence): return sequence.items.map(\.value)
        case .scalar(let scalar):
            switch scalar.resolvedTag {
            case .null: return YAMLNull()
            case .bool: return bool ?? false
            case .int: return int ?? scalar.string
            case .float: return double ?? scalar.string
            default: return scalar.string
            }
        }
    }

    static func integer(_ text: String) -> Int? {
        var digits = Substring(text.filter { $0 != "_" })
        var negative = false
        if let sign = digits.first, sign == "-" || sign == "+" {
            negative = sign == "-"
            digits = digits.dropFirst()
        }
        let magnitude: Int?
        if digits.contains(":") {
            // Sexagesimal: each group is a base-60 digit.
            var total = 0
            for group in digits.split(separator: ":", omittingEmptySubsequences: false) {
                guard let part = Int(group, radix: 10) else { return nil }
                let (shifted, overflow) = total.multipliedReportingOverflow(by: 60)
                let (sum, sumOverflow) = shifted.addingReportingOverflow(part)
                guard !overflow, !sumOverflow else { return nil }
                total = sum
            }
            magnitude = total
        } else if digits.hasPrefix("0b") {
            magnitude = Int(digits.dropFirst(2), radix: 2)
        } else if digits.hasPrefix("0x") {
            magnitude = Int(digits.dropFirst(2), radix: 16)
        } else if digits.hasPrefix("0o") {
            magnitude = Int(digits.dropFirst(2), radix: 8)
        } else if digits.count > 1, digits.hasPrefix("0") {
            magnitude = Int(digits.dropFirst(), radix: 8)
        } else {
            magnitude = Int(digits, radix: 10)
        }
        guard let magnitude else { return nil }
        return negative ? -magnitude : magnitude
    }
}

/// A null scalar in ``YAMLNode/value``.
public struct YAMLNull: Sendable, Equatable {
    public init() {}
}
