/// Netlink framing, encoded and decoded in pure Swift so it can be tested without privileges.
///
/// Netlink is host-endian; Linux on every platform Ambit targets is little-endian.
enum Netlink {
    static let headerSize = 16
    static let attributeHeaderSize = 4

    // Message types and flags from <linux/netlink.h>.
    static let errorType: UInt16 = 2  // NLMSG_ERROR
    static let doneType: UInt16 = 3  // NLMSG_DONE
    static let request: UInt16 = 0x1  // NLM_F_REQUEST
    static let ack: UInt16 = 0x4  // NLM_F_ACK
    static let replace: UInt16 = 0x100  // NLM_F_REPLACE
    static let exclusive: UInt16 = 0x200  // NLM_F_EXCL
    static let create: UInt16 = 0x400  // NLM_F_CREATE
    static let append: UInt16 = 0x800  // NLM_F_APPEND
    /// In an NLMSG_ERROR header: the echoed request is only its header.
    static let capped: UInt16 = 0x100  // NLM_F_CAPPED
    /// In an NLMSG_ERROR header: extended-ACK attributes follow.
    static let ackTLVs: UInt16 = 0x200  // NLM_F_ACK_TLVS
    static let extAckMessage: UInt16 = 1  // NLMSGERR_ATTR_MSG

    static func align(_ length: Int) -> Int { (length + 3) & ~3 }

    /// What the kernel answered to one request, matched to it by sequence number.
    enum Reply: Hashable {
        /// `NLMSG_ERROR` with error 0.
        case ack(sequence: UInt32)
        /// `NLMSG_ERROR` with a negative errno; `message` is the extended-ACK text, if any.
        case error(sequence: UInt32, errno: Int32, message: String?)
        /// `NLMSG_DONE` ending a dump.
        case done(sequence: UInt32)
        /// Any other message: an object the request asked for.
        case data(type: UInt16, sequence: UInt32, payload: [UInt8])
    }

    /// Splits a datagram from a netlink socket into replies. Stops at the first malformed header.
    static func parse(_ buffer: [UInt8]) -> [Reply] {
        var replies: [Reply] = []
        var offset = 0
        while buffer.count - offset >= headerSize {
            let length = Int(buffer.u32(at: offset))
            guard length >= headerSize, offset + length <= buffer.count else { break }
            let type = buffer.u16(at: offset + 4)
            let flags = buffer.u16(at: offset + 6)
            let sequence = buffer.u32(at: offset + 8)
            let body = offset + headerSize
            switch type {
            case errorType where length >= headerSize + 4:
                let code = Int32(bitPattern: buffer.u32(at: body))
                if code == 0 {
                    replies.append(.ack(sequence: sequence))
                } else {
                    let message = extAckMessage(buffer, body: body, end: offset + length, flags: flags)
                    replies.append(.error(sequence: sequence, errno: -code, message: message))
                }
            case doneType:
                replies.append(.done(sequence: sequence))
            default:
                replies.append(.data(type: type, sequence: sequence, payload: Array(buffer[body..<(offset + length)])))
            }
            offset += align(length)
        }
        return replies
    }

    /// The `NLMSGERR_ATTR_MSG` string after the echoed request in an error message.
    private static func extAckMessage(_ buffer: [UInt8], body: Int, end: Int, flags: UInt16) -> String? {
        guard flags & ackTLVs != 0, end - body >= 4 + headerSize else { return nil }
        let echoedLength = Int(buffer.u32(at: body + 4))
        var offset = body + 4 + (flags & capped != 0 ? headerSize : align(echoedLength))
        while end - offset >= attributeHeaderSize {
            let length = Int(buffer.u16(at: offset))
            let type = buffer.u16(at: offset + 2) & 0x3fff
            guard length >= attributeHeaderSize, offset + length <= end else { return nil }
            if type == extAckMessage {
                let text = buffer[(offset + attributeHeaderSize)..<(offset + length)].prefix { $0 != 0 }
                return String(decoding: text, as: UTF8.self)
            }
            offset += align(length)
        }
        return nil
    }

    /// Builds one message: header, a fixed family header, then attributes.
    struct MessageBuilder {
        private(set) var bytes: [UInt8] = []

        init(type: UInt16, flags: UInt16, sequence: UInt32, familyHeader: [UInt8]) {
            bytes.appendU32(0)  // length, patched in `finish()`
            bytes.appendU16(type)
            bytes.appendU16(flags)
            bytes.appendU32(sequence)
            bytes.appendU32(0)  // port id: the kernel fills it in
            bytes += familyHeader
            pad()
        }

        mutating func attribute(_ type: UInt16, _ payload: [UInt8]) {
            bytes.appendU16(UInt16(attributeHeaderSize + payload.count))
            bytes.appendU16(type)
            bytes += payload
            pad()
        }

        mutating func attribute(_ type: UInt16, u32 value: UInt32) {
            var payload: [UInt8] = []
            payload.appendU32(value)
            attribute(type, payload)
        }

        private mutating func pad() {
            bytes += [UInt8](repeating: 0, count: align(bytes.count) - bytes.count)
        }

        func finish() -> [UInt8] {
            var result = bytes
            let length = UInt32(result.count)
            for index in 0..<4 { result[index] = UInt8(truncatingIfNeeded: length >> (8 * index)) }
            return result
        }
    }
}

extension [UInt8] {
    func u16(at offset: Int) -> UInt16 {
        UInt16(self[offset]) | UInt16(self[offset + 1]) << 8
    }

    func u32(at offset: Int) -> UInt32 {
        (0..<4).reduce(0) { $0 | UInt32(self[offset + $1]) << (8 * $1) }
    }

    mutating func appendU16(_ value: UInt16) {
        append(UInt8(truncatingIfNeeded: value))
        append(UInt8(truncatingIfNeeded: value >> 8))
    }

    mutating func appendU32(_ value: UInt32) {
        for index in 0..<4 { append(UInt8(truncatingIfNeeded: value >> (8 * index))) }
    }
}
