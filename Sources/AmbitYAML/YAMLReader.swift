import CLibYAML

/// Why a text is not YAML, or not YAML Ambit reads: libyaml's own wording for syntax (`did not find
/// expected ',' or '}'`, with the construct it was in: `while parsing a flow mapping`), or one of
/// the composer's checks (an undefined alias, a duplicate key, nesting too deep).
public struct YAMLError: Error, Sendable, CustomStringConvertible {
    public let problem: String
    public let context: String?
    public let mark: YAMLMark?

    public init(problem: String, context: String? = nil, mark: YAMLMark?) {
        self.problem = problem
        self.context = context
        self.mark = mark
    }

    public var description: String { context.map { "\(problem) \($0)" } ?? problem }

    /// The description after its line and column, for messages that name no line of their own.
    public var located: String { mark.map { "line \($0.line), column \($0.column): \(description)" } ?? description }
}

/// Reads the documents of a YAML stream one at a time, with libyaml's parser and a composer that
/// keeps no recursion: nesting costs heap, never stack, and is refused past ``maximumDepth``.
/// Aliases are replaced by the node their anchor names (anchors are scoped to their document), and a
/// document that would hold more than `expansionLimit` nodes with its aliases expanded is refused, so
/// whoever walks a document it returns walks a bounded tree. A mapping with the same key twice is
/// refused, as Kubernetes refuses it.
public final class YAMLReader {
    /// Deepest nesting of mappings and sequences read, counted through aliases (a tree is as deep as
    /// the node an alias stands for makes it): far beyond any Kubernetes object or CRD schema, far
    /// below what a hostile file of a few MiB (`[[[[...`, or anchors that nest each other) would ask
    /// for, whose tree would exhaust the stack when it is freed.
    public static let maximumDepth = 1_000

    /// Most nodes a document may hold once its aliases are expanded, unless the reader is given
    /// another limit: far above any real object, far below what nested aliases can expand to (a
    /// "billion laughs" document: a few kilobytes that would expand to millions of nodes).
    public static let maximumExpandedNodes = 200_000

    /// Most nodes a document read here may hold with its aliases expanded.
    public let expansionLimit: Int

    private let parser: UnsafeMutablePointer<yaml_parser_t>
    private let input: UnsafeMutableBufferPointer<UInt8>
    private let inputCount: Int
    /// Each anchor's node, how deep it is (a scalar is 1) and how many nodes it holds expanded.
    private var anchors: [String: (node: YAMLNode, depth: Int, size: Int)] = [:]
    private var finished = false

    public init(yaml text: String, expansionLimit: Int = YAMLReader.maximumExpandedNodes) throws(YAMLError) {
        self.expansionLimit = expansionLimit
        let utf8 = text.utf8
        input = .allocate(capacity: max(utf8.count, 1))
        _ = input.initialize(from: utf8)
        inputCount = utf8.count
        parser = .allocate(capacity: 1)
        // Zeroed first: deinit (which runs when a later step throws) deletes it either way.
        parser.initialize(to: yaml_parser_t())
        guard yaml_parser_initialize(parser) == 1 else {
            throw YAMLError(problem: "out of memory", mark: nil)
        }
        yaml_parser_set_encoding(parser, YAML_UTF8_ENCODING)
        yaml_parser_set_input_string(parser, input.baseAddress, inputCount)
        guard case .streamStart = try nextEvent() else {
            throw YAMLError(problem: "expected the start of a YAML stream", mark: nil)
        }
    }

    deinit {
        yaml_parser_delete(parser)
        parser.deallocate()
        input.deallocate()
    }

    /// The whole of `text`, which must hold at most one document; `nil` when it holds none.
    public static func singleDocument(yaml text: String) throws(YAMLError) -> YAMLNode? {
        let reader = try YAMLReader(yaml: text)
        guard let root = try reader.nextDocument() else { return nil }
        if let another = try reader.nextDocument() {
            throw YAMLError(problem: "expected a single document, found another", mark: another.mark)
        }
        return root
    }

    /// Every document of `text`, in order.
    public static func allDocuments(yaml text: String) throws(YAMLError) -> [YAMLNode] {
        let reader = try YAMLReader(yaml: text)
        var documents: [YAMLNode] = []
        while let root = try reader.nextDocument() { documents.append(root) }
        return documents
    }

    /// The next document's root node; `nil` at the end of the stream.
    public func nextDocument() throws(YAMLError) -> YAMLNode? {
        guard !finished else { return nil }
        switch try nextEvent() {
        case .streamEnd:
            finished = true
            return nil
        case .documentStart:
            break
        default:
            throw YAMLError(problem: "expected the start of a document", mark: nil)
        }
        anchors = [:]
        let root = try composeNode()
        guard case .documentEnd = try nextEvent() else {
            throw YAMLError(problem: "expected the end of a document", mark: root.mark)
        }
        return root
    }

    /// A collection being read.
    private struct Frame {
        var isMapping: Bool
        var anchor: String?
        var mark: YAMLMark
        var items: [YAMLNode] = []
        var pairs: [(key: YAMLNode, value: YAMLNode)] = []
        var pendingKey: YAMLNode?
        var keys: Set<KeyIdentity> = []
        /// The deepest child so far.
        var childDepth = 0
        /// The nodes of the children so far, aliases expanded.
        var childSize = 0
    }

    /// Two scalar keys are the same key when their text and their type are: `1` and `"1"` differ.
    private struct KeyIdentity: Hashable {
        let text: String
        let tag: YAMLTag
    }

    private func composeNode() throws(YAMLError) -> YAMLNode {
        var stack: [Frame] = []
        while true {
            var completed: YAMLNode
            var depth = 1
            var size = 1
            var mark: YAMLMark?
            switch try nextEvent() {
            case .scalar(let scalar, let anchor):
                completed = .scalar(scalar)
                mark = scalar.mark
                if let anchor { anchors[anchor] = (completed, 1, 1) }
            case .alias(let anchor, let aliasMark):
                guard let target = anchors[anchor] else {
                    throw YAMLError(problem: "found undefined alias \"\(anchor)\"", mark: aliasMark)
                }
                completed = target.node
                depth = target.depth
                size = target.size
                mark = aliasMark
            case .sequenceStart(let anchor, let mark):
                try open(Frame(isMapping: false, anchor: anchor, mark: mark), on: &stack)
                continue
            case .mappingStart(let anchor, let mark):
                try open(Frame(isMapping: true, anchor: anchor, mark: mark), on: &stack)
                continue
            case .sequenceEnd, .mappingEnd:
                guard let frame = stack.popLast() else {
                    throw YAMLError(problem: "unexpected end of a collection", mark: nil)
                }
                completed =
                    frame.isMapping
                    ? .mapping(.init(frame.pairs, mark: frame.mark)) : .sequence(.init(frame.items, mark: frame.mark))
                depth = frame.childDepth + 1
                size = frame.childSize + 1
                mark = frame.mark
                if let anchor = frame.anchor { anchors[anchor] = (completed, depth, size) }
            case .streamStart, .streamEnd, .documentStart, .documentEnd:
                throw YAMLError(problem: "expected a node", mark: nil)
            }
            // The collection this node joins holds at least its children so far, this node and itself:
            // past the limit, so is the document (and counting as nodes join bounds the work too).
            guard size + (stack.last.map { $0.childSize + 1 } ?? 0) <= expansionLimit else {
                throw YAMLError(
                    problem: "expands to more than \(expansionLimit) YAML nodes (nested aliases?)",
                    mark: mark
                )
            }
            guard !stack.isEmpty else { return completed }
            // Through an alias a node can be deeper than the text's nesting shows.
            guard stack.count + depth <= Self.maximumDepth else {
                throw YAMLError(problem: "nested deeper than \(Self.maximumDepth) levels (through aliases)", mark: mark)
            }
            stack[stack.count - 1].childDepth = max(stack[stack.count - 1].childDepth, depth)
            stack[stack.count - 1].childSize += size
            try add(completed, to: &stack[stack.count - 1])
        }
    }

    private func open(_ frame: Frame, on stack: inout [Frame]) throws(YAMLError) {
        guard stack.count < Self.maximumDepth else {
            throw YAMLError(problem: "nested deeper than \(Self.maximumDepth) levels", mark: frame.mark)
        }
        stack.append(frame)
    }

    private func add(_ node: YAMLNode, to frame: inout Frame) throws(YAMLError) {
        guard frame.isMapping else {
            frame.items.append(node)
            return
        }
        guard let key = frame.pendingKey else {
            if case .scalar(let scalar) = node {
                let identity = KeyIdentity(text: scalar.string, tag: scalar.resolvedTag)
                guard frame.keys.insert(identity).inserted else {
                    throw YAMLError(problem: "duplicate key \"\(scalar.string)\" in a mapping", mark: scalar.mark)
                }
            }
            frame.pendingKey = node
            return
        }
        frame.pairs.append((key: key, value: node))
        frame.pendingKey = nil
    }

    // MARK: - Events

    private enum Event {
        case streamStart, streamEnd, documentStart, documentEnd
        case alias(anchor: String, mark: YAMLMark)
        case scalar(YAMLNode.Scalar, anchor: String?)
        case sequenceStart(anchor: String?, mark: YAMLMark)
        case sequenceEnd
        case mappingStart(anchor: String?, mark: YAMLMark)
        case mappingEnd
    }

    private func nextEvent() throws(YAMLError) -> Event {
        var raw = yaml_event_t()
        guard yaml_parser_parse(parser, &raw) == 1 else { throw parserError() }
        defer { yaml_event_delete(&raw) }
        let mark = YAMLMark(line: Int(raw.start_mark.line) + 1, column: Int(raw.start_mark.column) + 1)
        let event: Event
        switch raw.type {
        case YAML_STREAM_START_EVENT: event = .streamStart
        case YAML_STREAM_END_EVENT: event = .streamEnd
        case YAML_DOCUMENT_START_EVENT: event = .documentStart
        case YAML_DOCUMENT_END_EVENT: event = .documentEnd
        case YAML_ALIAS_EVENT: event = .alias(anchor: Self.string(raw.data.alias.anchor) ?? "", mark: mark)
        case YAML_SCALAR_EVENT:
            let data = raw.data.scalar
            let text = String(decoding: UnsafeBufferPointer(start: data.value, count: data.length), as: UTF8.self)
            let style: YAMLNode.Scalar.Style
            switch data.style {
            case YAML_SINGLE_QUOTED_SCALAR_STYLE: style = .singleQuoted
            case YAML_DOUBLE_QUOTED_SCALAR_STYLE: style = .doubleQuoted
            case YAML_LITERAL_SCALAR_STYLE: style = .literal
            case YAML_FOLDED_SCALAR_STYLE: style = .folded
            default: style = .plain
            }
            let tag = Self.string(data.tag).map(YAMLTag.init(rawValue:))
            event = .scalar(.init(text, tag: tag, style: style, mark: mark), anchor: Self.string(data.anchor))
        case YAML_SEQUENCE_START_EVENT:
            event = .sequenceStart(anchor: Self.string(raw.data.sequence_start.anchor), mark: mark)
        case YAML_SEQUENCE_END_EVENT: event = .sequenceEnd
        case YAML_MAPPING_START_EVENT:
            event = .mappingStart(anchor: Self.string(raw.data.mapping_start.anchor), mark: mark)
        case YAML_MAPPING_END_EVENT: event = .mappingEnd
        default: throw YAMLError(problem: "unexpected parser event \(raw.type.rawValue)", mark: mark)
        }
        return event
    }

    private static func string(_ pointer: UnsafeMutablePointer<yaml_char_t>?) -> String? {
        pointer.map { String(cString: $0) }
    }

    private func parserError() -> YAMLError {
        let state = parser.pointee
        let problem = state.problem.map { String(cString: $0) } ?? "unknown error"
        let context = state.context.map { String(cString: $0) }
        switch state.error {
        case YAML_MEMORY_ERROR:
            return YAMLError(problem: "out of memory", mark: nil)
        case YAML_READER_ERROR:
            // The reader counts bytes, not lines: find the line of the offending byte.
            let offset = min(Int(state.problem_offset), inputCount)
            var line = 1
            var column = 1
            for byte in input[..<offset] {
                if byte == UInt8(ascii: "\n") {
                    line += 1
                    column = 1
                } else {
                    column += 1
                }
            }
            return YAMLError(problem: "\(problem) (byte \(offset + 1))", mark: YAMLMark(line: line, column: column))
        default:
            let mark = YAMLMark(line: Int(state.problem_mark.line) + 1, column: Int(state.problem_mark.column) + 1)
            return YAMLError(problem: problem, context: context, mark: mark)
        }
    }
}
