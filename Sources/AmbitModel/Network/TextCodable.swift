/// A value that is written as its text in JSON and YAML, and read back with the same strict parser
/// the rest of the code uses (a malformed value is a decoding error that names the reason).
public protocol TextCodable: Codable, CustomStringConvertible {
    init(parsing text: String) throws
}

extension TextCodable {
    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        do {
            try self.init(parsing: text)
        } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "\(error)"))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
