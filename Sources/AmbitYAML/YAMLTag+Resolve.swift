extension YAMLTag {
    /// The type of a plain, untagged scalar under YAML 1.1's rules, the ones Kubernetes' YAML
    /// reader (and Istio's) applies, tried in this order: bool (`true`, `yes`, `on`, ... in three
    /// casings), int (decimal, `0b`, `0`/`0o` octal, `0x`, sexagesimal `1:30`, `_` separators), float
    /// (`1.5`, `1e3`, `.inf`, `.nan`, sexagesimal), merge (`<<`), null (`~`, `null`, nothing),
    /// timestamp (`2001-12-14`, `2001-12-14t21:59:43.10-05:00`), value (`=`); anything else a string.
    public static func resolve(plain text: String) -> YAMLTag {
        var text = text
        return text.withUTF8 { bytes in
            if isBool(bytes) { return .bool }
            if isInt(bytes) { return .int }
            if isFloat(bytes) { return .float }
            if bytes.count == 2, bytes[0] == UInt8(ascii: "<"), bytes[1] == UInt8(ascii: "<") { return .merge }
            if isNull(bytes) { return .null }
            if isTimestamp(bytes) { return .timestamp }
            if bytes.count == 1, bytes[0] == UInt8(ascii: "=") { return .value }
            return .str
        }
    }

    private static let boolWords: Set<String> = [
        "yes", "Yes", "YES", "no", "No", "NO", "true", "True", "TRUE", "false", "False", "FALSE",
        "on", "On", "ON", "off", "Off", "OFF",
    ]
    private static let nullWords: Set<String> = ["", "~", "null", "Null", "NULL"]

    private static func isBool(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        bytes.count <= 5 && boolWords.contains(String(decoding: bytes, as: UTF8.self))
    }

    private static func isNull(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        bytes.count <= 4 && nullWords.contains(String(decoding: bytes, as: UTF8.self))
    }

    private static func isInt(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        var scanner = ByteScanner(bytes)
        scanner.skipSign()
        let start = scanner
        if scanner.take("0") {
            if scanner.take("b") { return scanner.takeAll(binaryOrUnderscore) > 0 && scanner.atEnd }
            if scanner.take("x") { return scanner.takeAll(hexOrUnderscore) > 0 && scanner.atEnd }
            if scanner.atEnd { return true }
            _ = scanner.take("o")
            return scanner.takeAll(octalOrUnderscore) > 0 && scanner.atEnd
        }
        scanner = start
        guard scanner.take(where: { $0 >= UInt8(ascii: "1") && $0 <= UInt8(ascii: "9") }) else { return false }
        scanner.takeAll(decimalOrUnderscore)
        if scanner.atEnd { return true }
        // Sexagesimal: 1:30, 190:20:30.
        return scanner.takeSexagesimalGroups() && scanner.atEnd
    }

    private static func isFloat(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        // .5, .5e+3 (no sign before the dot, a signed exponent).
        var scanner = ByteScanner(bytes)
        if scanner.take(".") {
            if scanner.takeAll(decimalOrUnderscore) > 0 {
                if scanner.atEnd { return true }
                return scanner.take(where: { $0 == UInt8(ascii: "e") || $0 == UInt8(ascii: "E") })
                    && scanner.take(where: { $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "-") })
                    && scanner.takeAll(decimal) > 0 && scanner.atEnd
            }
            // .nan and .inf in three casings (only infinity takes a sign, below).
            return scanner.takeAny(of: ["nan", "NaN", "NAN", "inf", "Inf", "INF"]) && scanner.atEnd
        }
        scanner = ByteScanner(bytes)
        scanner.skipSign()
        if scanner.take(".") { return scanner.takeAny(of: ["inf", "Inf", "INF"]) && scanner.atEnd }
        guard scanner.take(where: decimal) else { return false }
        scanner.takeAll(decimalOrUnderscore)
        let afterDigits = scanner
        // Sexagesimal with a fraction: 190:20:30.15.
        if scanner.takeSexagesimalGroups(), scanner.take(".") {
            scanner.takeAll(decimalOrUnderscore)
            if scanner.atEnd { return true }
        }
        scanner = afterDigits
        if scanner.take(".") { scanner.takeAll(decimalOrUnderscore) }
        if scanner.take(where: { $0 == UInt8(ascii: "e") || $0 == UInt8(ascii: "E") }) {
            _ = scanner.take(where: { $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "-") })
            guard scanner.takeAll(decimal) > 0 else { return false }
        }
        return scanner.atEnd
    }

    private static func isTimestamp(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        var scanner = ByteScanner(bytes)
        guard scanner.takeDigits(4...4), scanner.take("-") else { return false }
        let date = scanner
        if scanner.takeDigits(2...2), scanner.take("-"), scanner.takeDigits(2...2), scanner.atEnd { return true }
        scanner = date
        guard scanner.takeDigits(1...2), scanner.take("-"), scanner.takeDigits(1...2) else { return false }
        if !scanner.take(where: { $0 == UInt8(ascii: "T") || $0 == UInt8(ascii: "t") }) {
            guard scanner.takeAll(blank) > 0 else { return false }
        }
        guard scanner.takeDigits(1...2), scanner.take(":"), scanner.takeDigits(2...2), scanner.take(":"),
            scanner.takeDigits(2...2)
        else { return false }
        if scanner.take(".") { scanner.takeAll(decimal) }
        if scanner.atEnd { return true }
        scanner.takeAll(blank)
        if scanner.take("Z") { return scanner.atEnd }
        guard scanner.take(where: { $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "-") }), scanner.takeDigits(1...2)
        else { return false }
        if scanner.take(":") { guard scanner.takeDigits(2...2) else { return false } }
        return scanner.atEnd
    }

    private static func decimal(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }
    private static func blank(_ byte: UInt8) -> Bool { byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") }
    private static func decimalOrUnderscore(_ byte: UInt8) -> Bool { decimal(byte) || byte == UInt8(ascii: "_") }
    private static func binaryOrUnderscore(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: "0") || byte == UInt8(ascii: "1") || byte == UInt8(ascii: "_")
    }
    private static func octalOrUnderscore(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "7")) || byte == UInt8(ascii: "_")
    }
    private static func hexOrUnderscore(_ byte: UInt8) -> Bool {
        decimalOrUnderscore(byte) || (byte | 0x20 >= UInt8(ascii: "a") && byte | 0x20 <= UInt8(ascii: "f"))
    }
}

/// A cursor over a scalar's bytes for the resolver's patterns.
private struct ByteScanner {
    let bytes: UnsafeBufferPointer<UInt8>
    var index = 0

    init(_ bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    var atEnd: Bool { index == bytes.count }

    mutating func take(where matches: (UInt8) -> Bool) -> Bool {
        guard index < bytes.count, matches(bytes[index]) else { return false }
        index += 1
        return true
    }

    mutating func take(_ character: Unicode.Scalar) -> Bool {
        take(where: { $0 == UInt8(ascii: character) })
    }

    @discardableResult
    mutating func takeAll(_ matches: (UInt8) -> Bool) -> Int {
        let start = index
        while take(where: matches) {}
        return index - start
    }

    mutating func takeDigits(_ counts: ClosedRange<Int>) -> Bool {
        var taken = 0
        while taken < counts.upperBound, take(where: { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) {
            taken += 1
        }
        return counts.contains(taken)
    }

    mutating func skipSign() {
        _ = take(where: { $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "-") })
    }

    /// One or more `:[0-5]?[0-9]` groups.
    mutating func takeSexagesimalGroups() -> Bool {
        var groups = 0
        while index < bytes.count, bytes[index] == UInt8(ascii: ":") {
            let before = index
            index += 1
            if index + 1 < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "5")).contains(bytes[index]),
                (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index + 1])
            {
                index += 2
            } else if index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) {
                index += 1
            } else {
                index = before
                break
            }
            groups += 1
        }
        return groups > 0
    }

    mutating func takeAny(of words: [StaticString]) -> Bool {
        for word in words {
            let count = word.utf8CodeUnitCount
            guard bytes.count - index >= count else { continue }
            let matches = (0..<count).allSatisfy { bytes[index + $0] == word.utf8Start[$0] }
            if matches {
                index += count
                return true
            }
        }
        return false
    }
}
