/// An IPv4 or IPv6 address as a value, parsed and printed without the C library so it can be
/// used in pure model code and hashed cheaply as an index key.
///
/// Parsing is strict: IPv4 is four decimal octets without leading zeros; IPv6 follows RFC 4291
/// (with `::` compression and an optional dotted IPv4 tail) and prints in RFC 5952 form.
/// Zone identifiers (`fe80::1%eth0`) are rejected: a policy or manifest address never has one.
///
/// IPv6 addresses are two 64-bit halves rather than one `UInt128`: on Linux, Swift 6.3 emits
/// aligned 16-byte loads for `UInt128` enum payloads that the enum layout does not honour,
/// which crashed at run time.
public enum IPAddress: Hashable, Sendable, Comparable, CustomStringConvertible {
    case v4(UInt32)
    case v6(high: UInt64, low: UInt64)

    public init(parsing text: some StringProtocol) throws {
        if let v4 = Self.parseV4(Substring(text)) {
            self = .v4(v4)
        } else if let v6 = Self.parseV6(Substring(text)) {
            self = .v6(high: v6.high, low: v6.low)
        } else {
            throw IPAddressError(text: String(text))
        }
    }

    /// `nil` instead of an error, for callers that only branch on validity.
    public init?(_ text: some StringProtocol) {
        try? self.init(parsing: text)
    }

    public var isIPv4: Bool {
        if case .v4 = self { return true }
        return false
    }

    /// Number of bits in the address: 32 or 128.
    public var bitWidth: Int { isIPv4 ? 32 : 128 }

    public var isLoopback: Bool {
        switch self {
        case .v4(let value): return value >> 24 == 127
        case .v6(let high, let low): return high == 0 && low == 1
        }
    }

    /// The address in network byte order.
    public var bytes: [UInt8] {
        switch self {
        case .v4(let value): return (0..<4).map { UInt8(truncatingIfNeeded: value >> (24 - 8 * $0)) }
        case .v6(let high, let low):
            return (0..<8).map { UInt8(truncatingIfNeeded: high >> (56 - 8 * $0)) }
                + (0..<8).map { UInt8(truncatingIfNeeded: low >> (56 - 8 * $0)) }
        }
    }

    /// Builds an address from 4 or 16 bytes in network byte order.
    public init?(bytes: some Collection<UInt8>) {
        switch bytes.count {
        case 4: self = .v4(bytes.reduce(0) { $0 << 8 | UInt32($1) })
        case 16:
            self = .v6(
                high: bytes.prefix(8).reduce(0) { $0 << 8 | UInt64($1) },
                low: bytes.dropFirst(8).reduce(0) { $0 << 8 | UInt64($1) }
            )
        default: return nil
        }
    }

    public var description: String {
        switch self {
        case .v4(let value):
            return String(unsafeUninitializedCapacity: 15) { Self.writeV4(value, into: $0, at: 0) }
        case .v6(let high, let low):
            return Self.formatV6(high: high, low: low)
        }
    }

    /// Writes `value` in dotted form at `start` (room for 15 bytes needed); returns the end.
    static func writeV4(_ value: UInt32, into buffer: UnsafeMutableBufferPointer<UInt8>, at start: Int) -> Int {
        var index = start
        var shift: UInt32 = 24
        while true {
            index = writeDecimal(UInt16(truncatingIfNeeded: value >> shift & 0xff), into: buffer, at: index)
            if shift == 0 { return index }
            buffer[index] = UInt8(ascii: ".")
            index += 1
            shift -= 8
        }
    }

    /// Writes `value` in decimal at `start` (room for 5 bytes needed); returns the end.
    static func writeDecimal(_ value: UInt16, into buffer: UnsafeMutableBufferPointer<UInt8>, at start: Int) -> Int {
        var divisor: UInt16 = 10000
        while divisor > 1 && value < divisor { divisor /= 10 }
        var index = start
        var rest = value
        while divisor > 0 {
            buffer[index] = UInt8(ascii: "0") + UInt8(truncatingIfNeeded: rest / divisor)
            rest %= divisor
            divisor /= 10
            index += 1
        }
        return index
    }

    public static func < (lhs: IPAddress, rhs: IPAddress) -> Bool {
        switch (lhs, rhs) {
        case (.v4(let a), .v4(let b)): return a < b
        case (.v6(let aHigh, let aLow), .v6(let bHigh, let bLow)): return (aHigh, aLow) < (bHigh, bLow)
        case (.v4, .v6): return true
        case (.v6, .v4): return false
        }
    }

    /// Four decimal octets (0...255, no leading zero: some parsers read those as octal), over the
    /// UTF-8 bytes: an HBONE `:authority` is parsed for every stream.
    static func parseV4(_ text: Substring) -> UInt32? {
        var result: UInt32 = 0
        var octets = 0
        var value: UInt32 = 0
        var digits = 0
        for byte in text.utf8 {
            if byte == UInt8(ascii: ".") {
                guard digits > 0, octets < 3 else { return nil }
                result = result << 8 | value
                octets += 1
                value = 0
                digits = 0
            } else if isDigit(byte) {
                guard digits == 0 || value != 0 else { return nil }  // "0" may not lead
                digits += 1
                value = value * 10 + UInt32(byte - UInt8(ascii: "0"))
                guard value <= 255 else { return nil }
            } else {
                return nil
            }
        }
        guard digits > 0, octets == 3 else { return nil }
        return result << 8 | value
    }

    static func parseV6(_ text: Substring) -> (high: UInt64, low: UInt64)? {
        guard text.utf8.count >= 2, text.contains(":") else { return nil }
        let head: [UInt16]
        var tail: [UInt16] = []
        let sawGap: Bool
        if let gap = text.firstRange(of: "::") {
            sawGap = true
            let after = text[gap.upperBound...]
            if after.contains("::") { return nil }
            guard let h = parseGroups(text[..<gap.lowerBound], allowV4Tail: false),
                let t = parseGroups(after, allowV4Tail: true)
            else { return nil }
            head = h
            tail = t
        } else {
            sawGap = false
            guard let all = parseGroups(text, allowV4Tail: true) else { return nil }
            head = all
        }
        let total = head.count + tail.count
        if sawGap {
            guard total <= 7 else { return nil }
        } else {
            guard total == 8 else { return nil }
        }
        let groups = head + Array(repeating: 0, count: 8 - total) + tail
        return (
            groups[0..<4].reduce(0) { $0 << 16 | UInt64($1) },
            groups[4..<8].reduce(0) { $0 << 16 | UInt64($1) }
        )
    }

    /// Parses colon-separated hex groups; an empty string is zero groups. A dotted IPv4 address
    /// may end the list when `allowV4Tail`, counting as two groups.
    private static func parseGroups(_ text: Substring, allowV4Tail: Bool) -> [UInt16]? {
        if text.isEmpty { return [] }
        let pieces = text.split(separator: ":", omittingEmptySubsequences: false)
        var groups: [UInt16] = []
        for (index, piece) in pieces.enumerated() {
            if index == pieces.count - 1, allowV4Tail, piece.contains(".") {
                guard let v4 = parseV4(piece) else { return nil }
                groups.append(UInt16(v4 >> 16))
                groups.append(UInt16(v4 & 0xffff))
                continue
            }
            guard !piece.isEmpty, piece.count <= 4, piece.utf8.allSatisfy(isHexDigit),
                let value = UInt16(piece, radix: 16)
            else { return nil }
            groups.append(value)
        }
        return groups
    }

    /// RFC 5952: lower-case hex, no leading zeros, the longest run (>= 2) of zero groups as `::`.
    private static func formatV6(high: UInt64, low: UInt64) -> String {
        let groups =
            (0..<4).map { UInt16(truncatingIfNeeded: high >> (48 - 16 * $0)) }
            + (0..<4).map { UInt16(truncatingIfNeeded: low >> (48 - 16 * $0)) }
        // IPv4-mapped addresses read better with a dotted tail.
        if groups[0..<5].allSatisfy({ $0 == 0 }) && groups[5] == 0xffff {
            return "::ffff:" + IPAddress.v4(UInt32(truncatingIfNeeded: low)).description
        }
        var bestStart = -1
        var bestLength = 0
        var index = 0
        while index < 8 {
            if groups[index] == 0 {
                var end = index
                while end < 8 && groups[end] == 0 { end += 1 }
                if end - index > bestLength {
                    bestStart = index
                    bestLength = end - index
                }
                index = end
            } else {
                index += 1
            }
        }
        func hex(_ slice: ArraySlice<UInt16>) -> String {
            slice.map { String($0, radix: 16) }.joined(separator: ":")
        }
        guard bestLength >= 2 else { return hex(groups[...]) }
        return hex(groups[..<bestStart]) + "::" + hex(groups[(bestStart + bestLength)...])
    }

    private static func isDigit(_ byte: UInt8) -> Bool {
        byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
    }

    private static func isHexDigit(_ byte: UInt8) -> Bool {
        isDigit(byte) || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "f"))
            || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "F"))
    }
}

/// Text that is not an IPv4 or IPv6 address.
public struct IPAddressError: Error, Hashable, CustomStringConvertible {
    public let text: String
    public var description: String { "\"\(text)\" is not a valid IPv4 or IPv6 address" }
}

/// In JSON and YAML an address is its text.
extension IPAddress: TextCodable {}
