/// Where a node starts in its text, both counted from 1.
public struct YAMLMark: Hashable, Sendable, CustomStringConvertible {
    public let line: Int
    public let column: Int

    public init(line: Int, column: Int) {
        self.line = line
        self.column = column
    }

    public var description: String { "\(line):\(column)" }
}

/// A YAML tag, such as `tag:yaml.org,2002:int`. Plain scalars without one get theirs from
/// ``YAMLTag/resolve(plain:)``: the YAML 1.1 rules Kubernetes' own reader applies.
public struct YAMLTag: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String

    public init(rawValue: String) { self.rawValue = rawValue }

    public var description: String { rawValue }

    public static let str = YAMLTag(rawValue: "tag:yaml.org,2002:str")
    public static let int = YAMLTag(rawValue: "tag:yaml.org,2002:int")
    public static let float = YAMLTag(rawValue: "tag:yaml.org,2002:float")
    public static let bool = YAMLTag(rawValue: "tag:yaml.org,2002:bool")
    public static let null = YAMLTag(rawValue: "tag:yaml.org,2002:null")
    public static let timestamp = YAMLTag(rawValue: "tag:yaml.org,2002:timestamp")
    public static let merge = YAMLTag(rawValue: "tag:yaml.org,2002:merge")
    public static let value = YAMLTag(rawValue: "tag:yaml.org,2002:value")
    public static let seq = YAMLTag(rawValue: "tag:yaml.org,2002:seq")
    public static let map = YAMLTag(rawValue: "tag:yaml.org,2002:map")
}

/// One node of a YAML document. An alias is replaced by the node its anchor names, so a document
/// with aliases is a graph that shares nodes; ``YAMLReader`` bounds how many nodes it expands to.
public enum YAMLNode: Sendable {
    case scalar(Scalar)
    case mapping(Mapping)
    case sequence(Sequence)

    public struct Scalar: Sendable {
        public enum Style: Sendable {
            case plain, singleQuoted, doubleQuoted, literal, folded
        }

        public let string: String
        /// The tag written in the text (`!!str 80`), or the one a producer of the node knows
        /// (a JSON string is `str`); `nil` for a plain scalar, whose type its text decides.
        public let tag: YAMLTag?
        public let style: Style
        public let mark: YAMLMark?

        public init(_ string: String, tag: YAMLTag? = nil, style: Style = .plain, mark: YAMLMark? = nil) {
            self.string = string
            self.tag = tag
            self.style = style
            self.mark = mark
        }

        /// The scalar's type: its tag, `str` when quoted, else what ``YAMLTag/resolve(plain:)`` reads.
        public var resolvedTag: YAMLTag {
            if let tag, tag.rawValue != "!" { return tag }
            return style == .plain && tag == nil ? YAMLTag.resolve(plain: string) : .str
        }
    }

    public struct Mapping: Sendable {
        /// The pairs in document order; keys are unique (``YAMLReader`` refuses a duplicate).
        public let pairs: [(key: YAMLNode, value: YAMLNode)]
        public let mark: YAMLMark?

        public init(_ pairs: [(key: YAMLNode, value: YAMLNode)], mark: YAMLMark? = nil) {
            self.pairs = pairs
            self.mark = mark
        }
    }

    public struct Sequence: Sendable {
        public let items: [YAMLNode]
        public let mark: YAMLMark?

        public init(_ items: [YAMLNode], mark: YAMLMark? = nil) {
            self.items = items
            self.mark = mark
        }
    }

    public var mark: YAMLMark? {
        switch self {
        case .scalar(let scalar): return scalar.mark
        case .mapping(let mapping): return mapping.mark
        case .sequence(let sequence): return sequence.mark
        }
    }

    /// The resolved tag: a scalar's (``Scalar/resolvedTag``), `map` or `seq`.
    public var resolvedTag: YAMLTag {
        switch self {
        case .scalar(let scalar): return scalar.resolvedTag
        case .mapping: return .map
        case .sequence: return .seq
        }
    }

    /// The scalar's text; `nil` for a mapping or a sequence.
    public var scalarString: String? {
        if case .scalar(let scalar) = self { return scalar.string }
        return nil
    }
}
