import AmbitHBONE
import AmbitModel
import FuzzSupport
import NIOCore
import NIOHPACK

/// The HBONE server's reading of a CONNECT: the request headers (as HPACK on the wire, or as
/// `name: value` lines, which reach the checks more often) through `ConnectRequestValidator`, which
/// parses `:authority`, `forwarded`, `traceparent` and `baggage`.
///
/// Input: a first byte of 0 means the rest is an HPACK header block (NIO's decoder, as the server's
/// HTTP/2 handler runs it); anything else is text, one header per line, name and value split at the
/// first ": ". Invariant: an accepted `:authority` prints as an address that parses back to itself.
@_cdecl("LLVMFuzzerTestOneInput")
func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = FuzzDriver.bytes(data, size)
    var headers = HPACKHeaders()
    if bytes.first == 0 {
        var decoder = HPACKDecoder(allocator: ByteBufferAllocator())
        var block = ByteBuffer(bytes: bytes.dropFirst())
        guard let decoded = try? decoder.decodeHeaders(from: &block) else { return 0 }
        headers = decoded
    } else {
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: true) {
            let separator = line.firstRange(of: ": ")
            let name = separator.map { line[..<$0.lowerBound] } ?? line[...]
            // HTTP/2 refuses other names before any handler sees them (and NIO's API requires ASCII).
            guard name.utf8.allSatisfy({ $0 < 0x80 }) else { continue }
            headers.add(name: String(name), value: separator.map { String(line[$0.upperBound...]) } ?? "")
        }
    }
    switch ConnectRequestValidator.validate(headers) {
    case .valid(let authority, let extra):
        guard (try? IPEndpoint(parsing: authority.description)) == authority else {
            FuzzDriver.violated("accepted :authority \(authority) does not parse back to itself")
        }
        _ = extra.forwardedValue
    case .reject(let status, let reason):
        guard status == 400, !reason.isEmpty else { FuzzDriver.violated("rejected with \(status) \"\(reason)\"") }
    }
    return 0
}

@_cdecl("FuzzConnect_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    FuzzDriver.run(argc, argv, testOneInput)
}
