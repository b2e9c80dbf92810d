/// A duration in Gateway API notation (GEP-2257): one to four `<number><unit>` pairs with units
/// `h`, `m`, `s`, `ms` and at most five digits per number, e.g. `1h`, `500ms`, `1m30s`.
/// HTTPRoute timeouts use it, and so do Ambit's own duration options.
public struct GatewayDuration: Hashable, Sendable, CustomStringConvertible {
    public let duration: Duration
    public let description: String

    public init(parsing text: String) throws {
        var total = Duration.zero
        var digits = ""
        var pairs = 0
        var index = text.startIndex
        while index < text.endIndex {
            let character = text[index]
            if character.isASCII && character.isNumber {
                digits.append(character)
                index = text.index(after: index)
                continue
            }
            guard !digits.isEmpty, digits.count <= 5, let amount = Int64(digits) else {
                throw GatewayDurationError(text: text)
            }
            if text[index...].hasPrefix("ms") {
                total += .milliseconds(amount)
                index = text.index(index, offsetBy: 2)
            } else if character == "h" || character == "m" || character == "s" {
                total += .seconds(amount * (character == "h" ? 3600 : character == "m" ? 60 : 1))
                index = text.index(after: index)
            } else {
                throw GatewayDurationError(text: text)
            }
            digits = ""
            pairs += 1
        }
        guard digits.isEmpty, pairs >= 1, pairs <= 4 else { throw GatewayDurationError(text: text) }
        self.duration = total
        self.description = text
    }
}

/// Text that is not a Gateway API duration.
public struct GatewayDurationError: Error, Hashable, CustomStringConvertible {
    public let text: String
    public var description: String {
        "\"\(text)\" is not a duration (examples: 500ms, 10s, 1m30s, 24h; units h, m, s, ms)"
    }
}
