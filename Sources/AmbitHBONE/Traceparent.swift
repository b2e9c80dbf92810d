import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

// W3C trace context `traceparent` (version 00): `00-<32 hex trace id>-<16 hex span id>-<2 hex flags>`,
// lower-case hex, 55 bytes. A node agent makes one per connection and checks one per tunnel it
// accepts; a waypoint makes one per request. All of it works on UTF-8 bytes.
extension HBONEHeaders {
    /// A new `traceparent`: version 00, random 16-byte trace id and 8-byte span id, not sampled.
    public static func newTraceparent<Generator: RandomNumberGenerator>(using generator: inout Generator) -> String {
        var trace = (generator.next(), generator.next())
        if trace == (0, 0) { trace.1 = 1 }  // all-zero ids are invalid
        let span = nonZero(generator.next())
        return String(unsafeUninitializedCapacity: Traceparent.length) { bytes in
            Traceparent.put("00-", at: 0, in: bytes)
            Traceparent.putHex(trace.0, at: Traceparent.traceStart, in: bytes)
            Traceparent.putHex(trace.1, at: Traceparent.traceStart + 16, in: bytes)
            Traceparent.put("-", at: Traceparent.traceStart + 32, in: bytes)
            Traceparent.putHex(span, at: Traceparent.spanStart, in: bytes)
            Traceparent.put("-00", at: Traceparent.spanStart + 16, in: bytes)
            return Traceparent.length
        }
    }

    /// A new `traceparent` from the system's random source (drawn in batches, see ``TraceRandom``).
    public static func newTraceparent() -> String {
        var generator = TraceRandom()
        return newTraceparent(using: &generator)
    }

    /// A `traceparent` for one request inside a traced tunnel: the parent's trace id and flags with
    /// a span id of its own, so requests sharing a tunnel stay distinguishable; a new trace when
    /// `parent` is absent or malformed.
    public static func childTraceparent(of parent: String?) -> String {
        guard let parent, isValidTraceparent(parent) else { return newTraceparent() }
        var generator = TraceRandom()
        let span = nonZero(generator.next())
        return String(unsafeUninitializedCapacity: Traceparent.length) { bytes in
            // Valid means exactly `length` ASCII bytes.
            _ = bytes.initialize(from: parent.utf8)
            Traceparent.putHex(span, at: Traceparent.spanStart, in: bytes)
            return Traceparent.length
        }
    }

    /// Whether `value` is a well-formed version-00 `traceparent` (lower-case hex, ids not all zero).
    public static func isValidTraceparent(_ value: String) -> Bool {
        var value = value
        return value.withUTF8(Traceparent.isValid)
    }

    private static func nonZero(_ word: UInt64) -> UInt64 { word == 0 ? 1 : word }
}

/// The layout of a version-00 `traceparent`.
enum Traceparent {
    static let length = 55
    static let traceStart = 3
    static let spanStart = 36
    static let flagsStart = 53

    static func isValid(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard bytes.count == length, bytes[0] == UInt8(ascii: "0"), bytes[1] == UInt8(ascii: "0") else { return false }
        let dash = UInt8(ascii: "-")
        guard bytes[2] == dash, bytes[spanStart - 1] == dash, bytes[flagsStart - 1] == dash else { return false }
        var traceSeen = false
        var spanSeen = false
        for index in traceStart..<length where index != spanStart - 1 && index != flagsStart - 1 {
            let byte = bytes[index]
            guard
                (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
                    || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "f"))
            else { return false }
            if byte != UInt8(ascii: "0") {
                if index < spanStart {
                    traceSeen = true
                } else if index < flagsStart {
                    spanSeen = true
                }
            }
        }
        return traceSeen && spanSeen
    }

    static func put(_ text: StaticString, at offset: Int, in bytes: UnsafeMutableBufferPointer<UInt8>) {
        text.withUTF8Buffer { source in
            for index in 0..<source.count { bytes[offset + index] = source[index] }
        }
    }

    /// `word` as 16 lower-case hex digits, most significant first.
    static func putHex(_ word: UInt64, at offset: Int, in bytes: UnsafeMutableBufferPointer<UInt8>) {
        for index in 0..<16 {
            let nibble = UInt8(truncatingIfNeeded: word >> UInt64(60 - 4 * index)) & 0xf
            bytes[offset + index] = nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") - 10 + nibble
        }
    }
}

/// Random words for trace and span ids: the system's random bytes (`arc4random_buf`, which is
/// `getrandom(2)`), drawn 4 KiB at a time and shared by every thread, so a traceparent costs no
/// system call (it used to cost one per connection and one per waypoint request). Trace ids are
/// not secrets, they travel in headers; nothing else draws from here.
fileprivate struct TraceRandom: RandomNumberGenerator {
    private struct Pool {
        var words = [UInt64](repeating: 0, count: 512)
        var next = 512
    }

    private static let pool = Mutex(Pool())

    mutating func next() -> UInt64 {
        Self.pool.withLock { pool in
            if pool.next == pool.words.count {
                pool.words.withUnsafeMutableBytes { arc4random_buf($0.baseAddress!, $0.count) }
                pool.next = 0
            }
            defer { pool.next += 1 }
            return pool.words[pool.next]
        }
    }
}
