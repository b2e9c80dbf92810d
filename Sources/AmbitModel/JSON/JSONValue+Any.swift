extension JSONValue {
    /// A document built from Swift values, for status dumps assembled as dictionaries: `String`,
    /// `Bool`, integers of any width, `Double`, `Float`, `[Any]`, `[String: Any]`, `JSONValue` and optionals (`nil` is
    /// null); anything else is written as its description.
    public init(_ value: Any) {
        switch value {
        case let json as JSONValue: self = json
        case let text as String: self = .string(text)
        case let flag as Bool: self = .bool(flag)
        case let number as any BinaryInteger: self = .number("\(number)")
        case let number as Double: self = number.isFinite ? .number(String(number)) : .string(String(number))
        case let number as Float: self = number.isFinite ? .number(String(number)) : .string(String(number))
        case let members as [String: Any]: self = .object(members.mapValues { JSONValue($0) })
        case let items as [Any]: self = .array(items.map { JSONValue($0) })
        case let optional as Any?:
            guard let wrapped = optional else {
                self = .null
                return
            }
            self = .string("\(wrapped)")
        }
    }
}
