import AmbitModel
import CLibNFTNL

/// Encodes `NFTTable`s with libnftnl and sends them as one nfnetlink transaction.
///
/// Atomic replace: a batch `NEWTABLE, DELTABLE, NEWTABLE, NEWCHAIN…, NEWRULE…` creates the table if
/// it is missing (so the delete cannot fail), deletes it with everything in it, and builds it again;
/// the kernel commits the batch as a whole or not at all, so packets see the old or the new ruleset.
enum NFTBatch {
    private static let family = UInt16(NFPROTO_INET)

    static func replace(_ table: NFTTable) throws(CaptureError) {
        let socket = try NetlinkSocket(protocol: NETLINK_NETFILTER, name: "nftables")
        var batch = Encoder(socket: socket)
        batch.table(table.name, message: NFT_MSG_NEWTABLE, verb: "create")
        batch.table(table.name, message: NFT_MSG_DELTABLE, verb: "delete old")
        batch.table(table.name, message: NFT_MSG_NEWTABLE, verb: "create")
        for chain in table.chains { batch.chain(chain, table: table.name) }
        for chain in table.chains {
            for (index, rule) in chain.rules.enumerated() {
                batch.rule(rule, number: index + 1, chain: chain.name, table: table.name)
            }
        }
        try batch.commit()
    }

    /// Deletes the table; not an error when it does not exist.
    static func delete(tableName: String) throws(CaptureError) {
        let socket = try NetlinkSocket(protocol: NETLINK_NETFILTER, name: "nftables")
        var batch = Encoder(socket: socket)
        batch.table(tableName, message: NFT_MSG_NEWTABLE, verb: "create")
        batch.table(tableName, message: NFT_MSG_DELTABLE, verb: "delete")
        try batch.commit()
    }

    static func tableExists(_ name: String) throws(CaptureError) -> Bool {
        let socket = try NetlinkSocket(protocol: NETLINK_NETFILTER, name: "nftables")
        let sequence = socket.sequence()
        let message = withTable(name) { table in
            encode { buffer in
                let header = nftnl_nlmsg_build_hdr(
                    buffer,
                    UInt16(NFT_MSG_GETTABLE.rawValue),
                    family,
                    UInt16(NLM_F_ACK),
                    sequence
                )
                nftnl_table_nlmsg_build_payload(header, table)
                return header
            }
        }
        switch try socket.status(of: message, sequence: sequence, label: "get table inet \(name)") {
        case 0: return true
        case SystemCalls.notFound: return false
        case let code: throw CaptureError.netlink(operation: "get table inet \(name)", errno: code, message: nil)
        }
    }

    /// Accumulates one batch and the label of every message that must be acknowledged.
    private struct Encoder {
        let socket: NetlinkSocket
        var bytes: [UInt8] = []
        var labels: [UInt32: String] = [:]

        init(socket: NetlinkSocket) {
            self.socket = socket
            let sequence = socket.sequence()
            bytes += NFTBatch.encode { nftnl_batch_begin($0, sequence) }
        }

        mutating func table(_ name: String, message: nf_tables_msg_types, verb: String) {
            let sequence = socket.sequence()
            labels[sequence] = "\(verb) table inet \(name)"
            let flags = UInt16(message == NFT_MSG_NEWTABLE ? NLM_F_CREATE | NLM_F_ACK : NLM_F_ACK)
            bytes += NFTBatch.withTable(name) { table in
                NFTBatch.encode { buffer in
                    let header = nftnl_nlmsg_build_hdr(buffer, UInt16(message.rawValue), family, flags, sequence)
                    nftnl_table_nlmsg_build_payload(header, table)
                    return header
                }
            }
        }

        mutating func chain(_ chain: NFTChain, table: String) {
            let sequence = socket.sequence()
            labels[sequence] = "add chain inet \(table) \(chain.name) (type \(chain.kind.rawValue))"
            guard let object = nftnl_chain_alloc() else { return }
            defer { nftnl_chain_free(object) }
            nftnl_chain_set_str(object, UInt16(NFTNL_CHAIN_TABLE.rawValue), table)
            nftnl_chain_set_str(object, UInt16(NFTNL_CHAIN_NAME.rawValue), chain.name)
            nftnl_chain_set_str(object, UInt16(NFTNL_CHAIN_TYPE.rawValue), chain.kind.rawValue)
            nftnl_chain_set_u32(object, UInt16(NFTNL_CHAIN_HOOKNUM.rawValue), chain.hook.rawValue)
            nftnl_chain_set_s32(object, UInt16(NFTNL_CHAIN_PRIO.rawValue), chain.priority)
            nftnl_chain_set_u32(object, UInt16(NFTNL_CHAIN_POLICY.rawValue), UInt32(NF_ACCEPT))
            bytes += NFTBatch.encode { buffer in
                let flags = UInt16(NLM_F_CREATE | NLM_F_ACK)
                let header = nftnl_nlmsg_build_hdr(buffer, UInt16(NFT_MSG_NEWCHAIN.rawValue), family, flags, sequence)
                nftnl_chain_nlmsg_build_payload(header, object)
                return header
            }
        }

        mutating func rule(_ rule: NFTRule, number: Int, chain: String, table: String) {
            let sequence = socket.sequence()
            labels[sequence] = "add rule \(number) to chain inet \(table) \(chain) (\(rule.text))"
            guard let object = nftnl_rule_alloc() else { return }
            defer { nftnl_rule_free(object) }
            nftnl_rule_set_str(object, UInt16(NFTNL_RULE_TABLE.rawValue), table)
            nftnl_rule_set_str(object, UInt16(NFTNL_RULE_CHAIN.rawValue), chain)
            for expression in rule.expressions {
                for built in NFTBatch.build(expression) { nftnl_rule_add_expr(object, built) }
            }
            bytes += NFTBatch.encode { buffer in
                let flags = UInt16(NLM_F_CREATE | NLM_F_APPEND | NLM_F_ACK)
                let header = nftnl_nlmsg_build_hdr(buffer, UInt16(NFT_MSG_NEWRULE.rawValue), family, flags, sequence)
                nftnl_rule_nlmsg_build_payload(header, object)
                return header
            }
        }

        mutating func commit() throws(CaptureError) {
            let sequence = socket.sequence()
            bytes += NFTBatch.encode { nftnl_batch_end($0, sequence) }
            try socket.transact(bytes, expected: labels)
        }
    }

    /// The libnftnl expressions for one `NFTExpression` (the rule takes ownership of them).
    private static func build(_ expression: NFTExpression) -> [OpaquePointer] {
        let register = UInt32(NFT_REG_1.rawValue)
        func make(_ name: String, _ configure: (OpaquePointer) -> Void) -> OpaquePointer? {
            guard let built = nftnl_expr_alloc(name) else { return nil }
            configure(built)
            return built
        }
        func set(_ built: OpaquePointer, _ attribute: Int, _ value: UInt32) {
            nftnl_expr_set_u32(built, UInt16(attribute), value)
        }
        func set(_ built: OpaquePointer, _ attribute: Int, bytes: [UInt8]) {
            bytes.withUnsafeBytes { _ = nftnl_expr_set(built, UInt16(attribute), $0.baseAddress, UInt32($0.count)) }
        }
        let built: [OpaquePointer?]
        switch expression {
        case .metaLoad(let key):
            built = [
                make("meta") {
                    set($0, NFTNL_EXPR_META_KEY, key.rawValue)
                    set($0, NFTNL_EXPR_META_DREG, register)
                }
            ]
        case .metaSetMark:
            built = [
                make("meta") {
                    set($0, NFTNL_EXPR_META_KEY, NFTExpression.MetaKey.mark.rawValue)
                    set($0, NFTNL_EXPR_META_SREG, register)
                }
            ]
        case .ctLoadMark:
            built = [
                make("ct") {
                    set($0, NFTNL_EXPR_CT_KEY, UInt32(NFT_CT_MARK.rawValue))
                    set($0, NFTNL_EXPR_CT_DREG, register)
                }
            ]
        case .ctSetMark:
            built = [
                make("ct") {
                    set($0, NFTNL_EXPR_CT_KEY, UInt32(NFT_CT_MARK.rawValue))
                    set($0, NFTNL_EXPR_CT_SREG, register)
                }
            ]
        case .bitwise(let mask, let xor):
            built = [
                make("bitwise") {
                    set($0, NFTNL_EXPR_BITWISE_SREG, register)
                    set($0, NFTNL_EXPR_BITWISE_DREG, register)
                    set($0, NFTNL_EXPR_BITWISE_LEN, UInt32(mask.count))
                    set($0, NFTNL_EXPR_BITWISE_MASK, bytes: mask)
                    set($0, NFTNL_EXPR_BITWISE_XOR, bytes: xor)
                }
            ]
        case .compare(let op, let data):
            built = [
                make("cmp") {
                    set($0, NFTNL_EXPR_CMP_SREG, register)
                    set($0, NFTNL_EXPR_CMP_OP, op.rawValue)
                    set($0, NFTNL_EXPR_CMP_DATA, bytes: data)
                }
            ]
        case .payload(let base, let offset, let length):
            built = [
                make("payload") {
                    set($0, NFTNL_EXPR_PAYLOAD_DREG, register)
                    set($0, NFTNL_EXPR_PAYLOAD_BASE, base.rawValue)
                    set($0, NFTNL_EXPR_PAYLOAD_OFFSET, offset)
                    set($0, NFTNL_EXPR_PAYLOAD_LEN, length)
                }
            ]
        case .accept:
            built = [
                make("immediate") {
                    set($0, NFTNL_EXPR_IMM_DREG, UInt32(NFT_REG_VERDICT.rawValue))
                    set($0, NFTNL_EXPR_IMM_VERDICT, UInt32(NF_ACCEPT))
                }
            ]
        case .redirect(let port):
            built = [
                make("immediate") {
                    set($0, NFTNL_EXPR_IMM_DREG, register)
                    set($0, NFTNL_EXPR_IMM_DATA, bytes: [UInt8(port >> 8), UInt8(port & 0xff)])
                },
                make("redir") {
                    set($0, NFTNL_EXPR_REDIR_REG_PROTO_MIN, register)
                    set($0, NFTNL_EXPR_REDIR_FLAGS, 0x2)  // NF_NAT_RANGE_PROTO_SPECIFIED
                },
            ]
        case .fibSourceAddressType:
            built = [
                make("fib") {
                    set($0, NFTNL_EXPR_FIB_DREG, register)
                    set($0, NFTNL_EXPR_FIB_RESULT, UInt32(NFT_FIB_RESULT_ADDRTYPE.rawValue))
                    set($0, NFTNL_EXPR_FIB_FLAGS, 1)  // NFTA_FIB_F_SADDR
                }
            ]
        case .snat(let address):
            built = [
                make("immediate") {
                    set($0, NFTNL_EXPR_IMM_DREG, register)
                    set($0, NFTNL_EXPR_IMM_DATA, bytes: address.bytes)
                },
                make("nat") {
                    set($0, NFTNL_EXPR_NAT_TYPE, UInt32(NFT_NAT_SNAT.rawValue))
                    set($0, NFTNL_EXPR_NAT_FAMILY, UInt32(address.isIPv4 ? NFPROTO_IPV4 : NFPROTO_IPV6))
                    set($0, NFTNL_EXPR_NAT_REG_ADDR_MIN, register)
                },
            ]
        }
        return built.compactMap { $0 }
    }

    private static func withTable(_ name: String, _ body: (OpaquePointer) -> [UInt8]) -> [UInt8] {
        guard let table = nftnl_table_alloc() else { return [] }
        defer { nftnl_table_free(table) }
        nftnl_table_set_str(table, UInt16(NFTNL_TABLE_NAME.rawValue), name)
        return body(table)
    }

    /// Runs a libnftnl message builder on a zeroed page and returns the message it wrote.
    /// 16 KiB holds any message here: the longest rule is about 1 KiB.
    private static func encode(_ build: (UnsafeMutablePointer<CChar>) -> UnsafeMutablePointer<nlmsghdr>?) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: 16384)
        let length = buffer.withUnsafeMutableBytes { raw -> Int in
            guard let base = raw.baseAddress, let header = build(base.assumingMemoryBound(to: CChar.self)) else {
                return 0
            }
            return Int(header.pointee.nlmsg_len)
        }
        return Array(buffer.prefix(Netlink.align(min(length, buffer.count))))
    }
}
