import AmbitModel

/// An nftables table as plain data: what `InPodRules` installs, before it is encoded for the kernel.
///
/// Expressions mirror the kernel's virtual machine (what `nft --debug=netlink` prints). Every
/// expression here uses register 1: rules are short match chains, one value at a time.
struct NFTTable: Hashable, Sendable {
    var name: String
    var chains: [NFTChain]

    /// The rules of every chain, in installation order.
    var rules: [NFTRule] { chains.flatMap(\.rules) }
}

struct NFTChain: Hashable, Sendable {
    enum Kind: String, Sendable { case filter, route, nat }
    enum Hook: UInt32, Sendable {
        // NF_INET_* hook numbers.
        case prerouting = 0
        case output = 3
        case postrouting = 4
    }

    var name: String
    var kind: Kind
    var hook: Hook
    var priority: Int32
    var rules: [NFTRule]
}

struct NFTRule: Hashable, Sendable {
    var expressions: [NFTExpression]
    /// The rule as `nft list ruleset` prints it.
    var text: String
}

enum NFTExpression: Hashable, Sendable {
    enum MetaKey: UInt32, Sendable {
        // NFT_META_* keys.
        case mark = 3
        case iifname = 6
        case oifname = 7
        case nfproto = 15
        case l4proto = 16
    }
    enum CompareOperator: UInt32, Sendable {
        case equal = 0  // NFT_CMP_EQ
        case notEqual = 1  // NFT_CMP_NEQ
    }
    enum PayloadBase: UInt32, Sendable {
        case network = 1  // NFT_PAYLOAD_NETWORK_HEADER
        case transport = 2  // NFT_PAYLOAD_TRANSPORT_HEADER
    }

    /// reg1 ← meta key.
    case metaLoad(MetaKey)
    /// packet mark ← reg1.
    case metaSetMark
    /// reg1 ← conntrack mark.
    case ctLoadMark
    /// conntrack mark ← reg1.
    case ctSetMark
    /// reg1 ← (reg1 & mask) ^ xor, on `mask.count` bytes.
    case bitwise(mask: [UInt8], xor: [UInt8])
    /// Continue only if `reg1 op data`.
    case compare(CompareOperator, [UInt8])
    /// reg1 ← `length` bytes of a header at `offset`.
    case payload(PayloadBase, offset: UInt32, length: UInt32)
    /// Verdict: accept.
    case accept
    /// reg1 ← port; redirect to the local address of the hook (127.0.0.1/::1 on output, the incoming
    /// interface's primary address on prerouting) and that port.
    case redirect(port: UInt16)
    /// reg1 ← the route type of the packet's source address (`fib saddr type`, `RTN_*`).
    case fibSourceAddressType
    /// reg1 ← address; source NAT to it (`snat ip to`/`snat ip6 to`).
    case snat(to: IPAddress)
}

/// Builders for the expression sequences `nft` itself would generate for common matches.
enum NFTMatch {
    /// Mark values are host-endian 32-bit registers.
    static func hostU32(_ value: UInt32) -> [UInt8] {
        (0..<4).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
    }

    /// `meta mark & mask ==/!= value`.
    static func mark(_ value: UInt32, mask: UInt32, _ op: NFTExpression.CompareOperator) -> [NFTExpression] {
        [.metaLoad(.mark), .bitwise(mask: hostU32(mask), xor: hostU32(0)), .compare(op, hostU32(value))]
    }

    /// `ct mark & mask == value`.
    static func ctMark(_ value: UInt32, mask: UInt32) -> [NFTExpression] {
        [.ctLoadMark, .bitwise(mask: hostU32(mask), xor: hostU32(0)), .compare(.equal, hostU32(value))]
    }

    /// `meta nfproto ipv4` / `ipv6`.
    static func family(ipv4: Bool) -> [NFTExpression] {
        [.metaLoad(.nfproto), .compare(.equal, [ipv4 ? 2 : 10])]  // NFPROTO_IPV4 / NFPROTO_IPV6
    }

    /// `meta l4proto tcp`.
    static let tcp: [NFTExpression] = [.metaLoad(.l4proto), .compare(.equal, [6])]

    /// `iifname` / `oifname` equal to `name` (the kernel compares the whole 16-byte field).
    static func interface(_ key: NFTExpression.MetaKey, _ name: String) -> [NFTExpression] {
        let bytes = Array(name.utf8.prefix(15))
        return [.metaLoad(key), .compare(.equal, bytes + [UInt8](repeating: 0, count: 16 - bytes.count))]
    }

    /// `ip saddr` / `ip6 daddr` … guarded by the matching `meta nfproto`.
    static func address(
        source: Bool,
        _ address: IPAddress,
        _ op: NFTExpression.CompareOperator
    ) -> [NFTExpression] {
        let offset: UInt32 =
            address.isIPv4 ? (source ? 12 : 16) : (source ? 8 : 24)
        return family(ipv4: address.isIPv4) + [
            .payload(.network, offset: offset, length: UInt32(address.bytes.count)), .compare(op, address.bytes),
        ]
    }

    /// `fib saddr type local`: the source is one of this host's own addresses (traffic the host sends).
    static let fromThisHost: [NFTExpression] = [.fibSourceAddressType, .compare(.equal, hostU32(2))]  // RTN_LOCAL

    /// `tcp dport port` (with its `meta l4proto tcp` dependency).
    static func tcpDestinationPort(_ port: UInt16) -> [NFTExpression] {
        tcp + [.payload(.transport, offset: 2, length: 2), .compare(.equal, [UInt8(port >> 8), UInt8(port & 0xff)])]
    }
}
