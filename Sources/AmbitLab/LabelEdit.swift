/// One `key=value` or `key-` argument of `lab label`.
enum LabelEdit: Equatable {
    case set(String, String)
    case remove(String)

    static func parse(_ text: String) throws -> LabelEdit {
        if text.hasSuffix("-"), !text.contains("=") {
            let key = String(text.dropLast())
            guard !key.isEmpty else { throw LabError("\"\(text)\": empty label key") }
            return .remove(key)
        }
        guard let equals = text.firstIndex(of: "="), equals != text.startIndex else {
            throw LabError("\"\(text)\" is neither key=value nor key-")
        }
        return .set(String(text[..<equals]), String(text[text.index(after: equals)...]))
    }

    func apply(to labels: inout [String: String]) {
        switch self {
        case .set(let key, let value): labels[key] = value
        case .remove(let key): labels[key] = nil
        }
    }
}
