extension StringProtocol {
    /// Without leading and trailing white space (Unicode's, as Foundation's `whitespacesAndNewlines`),
    /// line breaks excepted when `newlines` is false (as `whitespaces`).
    public func trimmingWhitespace(newlines: Bool = true) -> String {
        func isBlank(_ character: Character) -> Bool {
            character.isWhitespace && (newlines || !character.isNewline)
        }
        guard let first = firstIndex(where: { !isBlank($0) }), let last = lastIndex(where: { !isBlank($0) }) else {
            return ""
        }
        return String(self[first...last])
    }
}

extension String {
    /// The string followed by spaces up to `width` characters (a table's column); unchanged when it is wider.
    public func padded(to width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }
}

extension StringProtocol {
    /// Equal but for the case of ASCII letters, as HTTP compares header names.
    public func equalsIgnoringASCIICase(_ other: some StringProtocol) -> Bool {
        utf8.count == other.utf8.count
            && zip(utf8, other.utf8).allSatisfy { a, b in
                a == b || (a | 0x20 == b | 0x20 && (a | 0x20) >= UInt8(ascii: "a") && (a | 0x20) <= UInt8(ascii: "z"))
            }
    }
}
