// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//
// Ambit eBPF capture backend: the in-pod redirection of the nftables backend done with socket-level
// BPF hooks instead of netfilter NAT. See README.md for maps, attach points and kernel features.
//
//   outbound  cgroup/connect4, cgroup/connect6  app connect() in an enrolled netns -> 127.0.0.1:15001
//                                               (or [::1]:15001), original destination recorded
//             sockops                           re-keys the record by the app's local address/port;
//                                               notes dials to the pod's own address (local_dials)
//             cgroup/getsockopt                 agent's getsockopt(SOL_IP|SOL_IPV6, 80) -> original dst
//             cgroup/getpeername4/6             the app's getpeername() shows the original destination
//   inbound   sk_lookup (per pod netns)         SYN from outside the pod to any port but the agent's
//                                               -> agent's 15006 listener (local addr stays original)

#ifdef AMBIT_USE_VMLINUX_H
#include "vmlinux.h"
#else
#include "ambit_bpf_types.h"
#endif
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "ambit_capture.h"

#define AF_INET 2
#define AF_INET6 10
#define SOCK_STREAM 1
#define IPPROTO_TCP 6
#define SOL_IP 0
#define SOL_IPV6 41
#define SO_ORIGINAL_DST 80     /* linux/netfilter_ipv4.h */
#define IP6T_SO_ORIGINAL_DST 80 /* linux/netfilter_ipv6/ip6_tables.h */

// struct sockaddr_in / sockaddr_in6 as the agent reads them (16 and 28 bytes).
struct ambit_sockaddr_in {
    __u16 family;
    __be16 port;
    __be32 addr;
    __u32 zero[2];
};
struct ambit_sockaddr_in6 {
    __u16 family;
    __be16 port;
    __u32 flowinfo;
    __u32 addr[4];
    __u32 scope_id;
};

#define MAX_PODS 4096
#define MAX_CONNECTIONS 65536

// The agent's view of each pod. Not LRU: the agent owns the entries and must never lose one.
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, MAX_PODS);
    __type(key, __u64);
    __type(value, struct ambit_netns_config);
    __uint(pinning, LIBBPF_PIN_BY_NAME);
} enrolled_netns SEC(".maps");

// Records are deleted at TCP_CLOSE; LRU is the safety net for sockets that never got that far
// (connect() failing before SYN, program reloads).
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, MAX_CONNECTIONS);
    __type(key, __u64);
    __type(value, struct ambit_orig_dst);
    __uint(pinning, LIBBPF_PIN_BY_NAME);
} orig_dst_by_cookie SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, MAX_CONNECTIONS);
    __type(key, struct ambit_tuple_key);
    __type(value, struct ambit_orig_dst);
    __uint(pinning, LIBBPF_PIN_BY_NAME);
} orig_dst_by_tuple SEC(".maps");

// Connections made inside an enrolled netns to the pod's own address (see ambit_capture.h).
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, MAX_CONNECTIONS);
    __type(key, struct ambit_dial_key);
    __type(value, __u32);
    __uint(pinning, LIBBPF_PIN_BY_NAME);
} local_dials SEC(".maps");

// The agent's inbound listeners, one per pod address. Sockets leave the map on close.
struct {
    __uint(type, BPF_MAP_TYPE_SOCKHASH);
    __uint(max_entries, 2 * MAX_PODS);
    __type(key, struct ambit_listener_key);
    __type(value, __u64);
    __uint(pinning, LIBBPF_PIN_BY_NAME);
} inbound_listeners SEC(".maps");

static __always_inline int is_agent_mark(__u32 mark)
{
    __u32 m = mark & AMBIT_MARK_MASK;
    return m == AMBIT_MARK_AGENT || m == AMBIT_MARK_RETURN_PATH;
}

static __always_inline int is_v4_mapped(const __u32 ip6[4])
{
    return ip6[0] == 0 && ip6[1] == 0 && ip6[2] == bpf_htonl(0x0000ffff);
}

// Addresses never captured on the way out: 0.0.0.0, 127/8 (as with nftables) and the pod's own
// address (nftables leaves traffic that is routed over lo alone).
static __always_inline int skip_v4(__be32 ip, const struct ambit_netns_config *cfg)
{
    __u32 h = bpf_ntohl(ip);
    return h == 0 || (h >> 24) == 127 || (cfg->pod_ip4 != 0 && ip == cfg->pod_ip4);
}

static __always_inline int skip_v6(const __u32 ip6[4], const struct ambit_netns_config *cfg)
{
    if (ip6[0] == 0 && ip6[1] == 0 && ip6[2] == 0 && (ip6[3] == 0 || ip6[3] == bpf_htonl(1)))
        return 1; // :: and ::1
    const __u32 *pod = (const __u32 *)cfg->pod_ip6;
    return (pod[0] | pod[1] | pod[2] | pod[3]) != 0 && ip6[0] == pod[0] && ip6[1] == pod[1] &&
           ip6[2] == pod[2] && ip6[3] == pod[3];
}

// Common gate of connect4/connect6: TCP, enrolled netns, not an agent socket.
static __always_inline const struct ambit_netns_config *capture_config(struct bpf_sock_addr *ctx,
                                                                       __u64 *netns)
{
    if (ctx->type != SOCK_STREAM || ctx->protocol != IPPROTO_TCP)
        return 0;
    *netns = bpf_get_netns_cookie(ctx);
    const struct ambit_netns_config *cfg = bpf_map_lookup_elem(&enrolled_netns, netns);
    if (!cfg)
        return 0;
    struct bpf_sock *sk = ctx->sk;
    if (!sk || is_agent_mark(sk->mark))
        return 0;
    return cfg;
}

static __always_inline void record(struct bpf_sock_addr *ctx, __u64 netns, __u16 family,
                                   const __u32 *addr, int words)
{
    struct ambit_orig_dst rec = {};
    rec.netns_cookie = netns;
    rec.family = family;
    rec.port = (__be16)ctx->user_port;
    __u32 *dst = (__u32 *)rec.addr;
    for (int i = 0; i < 4; i++)
        if (i < words)
            dst[i] = addr[i];
    __u64 cookie = bpf_get_socket_cookie(ctx);
    rec.socket_cookie = cookie;
    bpf_map_update_elem(&orig_dst_by_cookie, &cookie, &rec, BPF_ANY);
}

SEC("cgroup/connect4")
int ambit_connect4(struct bpf_sock_addr *ctx)
{
    __u64 netns;
    const struct ambit_netns_config *cfg = capture_config(ctx, &netns);
    if (!cfg)
        return 1;
    __u32 ip = ctx->user_ip4;
    if (skip_v4(ip, cfg))
        return 1;
    record(ctx, netns, AMBIT_AF_INET, &ip, 1);
    ctx->user_ip4 = bpf_htonl(0x7f000001);
    ctx->user_port = bpf_htons(AMBIT_PORT_OUTBOUND);
    return 1;
}

// IPv4-mapped destinations (a dual-stack socket talking IPv4) go to ::ffff:127.0.0.1:15001, i.e.
// the agent's IPv4 listener, and are recorded as IPv4. Native IPv6 goes to [::1]:15001, the agent's
// IPv6 listener, as the ip6 nat REDIRECT of the nftables backend does: a v4-mapped target would
// fail for sockets bound to an IPv6 source or set IPV6_V6ONLY, and SO_ORIGINAL_DST could not carry
// the IPv6 destination.
SEC("cgroup/connect6")
int ambit_connect6(struct bpf_sock_addr *ctx)
{
    __u64 netns;
    const struct ambit_netns_config *cfg = capture_config(ctx, &netns);
    if (!cfg)
        return 1;
    __u32 ip6[4] = {ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2], ctx->user_ip6[3]};
    if (is_v4_mapped(ip6)) {
        __u32 ip = ip6[3];
        if (skip_v4(ip, cfg))
            return 1;
        record(ctx, netns, AMBIT_AF_INET, &ip, 1);
        ctx->user_ip6[3] = bpf_htonl(0x7f000001);
    } else {
        if (skip_v6(ip6, cfg))
            return 1;
        record(ctx, netns, AMBIT_AF_INET6, ip6, 4);
        ctx->user_ip6[0] = 0;
        ctx->user_ip6[1] = 0;
        ctx->user_ip6[2] = 0;
        ctx->user_ip6[3] = bpf_htonl(1);
    }
    ctx->user_port = bpf_htons(AMBIT_PORT_OUTBOUND);
    return 1;
}

// Copy a sock_ops address (v4, or v6 with v4-mapped folded to v4) into a 16-byte key field;
// returns the AMBIT_AF_* family.
static __always_inline __u16 sockops_addr(__u32 family, __u32 ip4, const __u32 ip6_in[4], __u8 out[16])
{
    __u32 *o = (__u32 *)out;
    if (family == AF_INET) {
        o[0] = ip4;
        return AMBIT_AF_INET;
    }
    __u32 ip6[4] = {ip6_in[0], ip6_in[1], ip6_in[2], ip6_in[3]};
    if (is_v4_mapped(ip6)) {
        o[0] = ip6[3];
        return AMBIT_AF_INET;
    }
    o[0] = ip6[0];
    o[1] = ip6[1];
    o[2] = ip6[2];
    o[3] = ip6[3];
    return AMBIT_AF_INET6;
}

// The tuple key is the app socket's local address (which the agent sees as its peer).
static __always_inline void tuple_from_sockops(struct bpf_sock_ops *skops, __u64 netns,
                                               struct ambit_tuple_key *key)
{
    __u32 ip6[4] = {skops->local_ip6[0], skops->local_ip6[1], skops->local_ip6[2],
                    skops->local_ip6[3]};
    key->netns_cookie = netns;
    key->port = bpf_htons((__u16)skops->local_port);
    key->family = sockops_addr(skops->family, skops->local_ip4, ip6, key->addr);
}

static __always_inline void dial_from_sockops(struct bpf_sock_ops *skops, struct ambit_dial_key *key)
{
    __u32 l6[4] = {skops->local_ip6[0], skops->local_ip6[1], skops->local_ip6[2],
                   skops->local_ip6[3]};
    __u32 r6[4] = {skops->remote_ip6[0], skops->remote_ip6[1], skops->remote_ip6[2],
                   skops->remote_ip6[3]};
    key->family = sockops_addr(skops->family, skops->local_ip4, l6, key->src);
    sockops_addr(skops->family, skops->remote_ip4, r6, key->dst);
    key->src_port = bpf_htons((__u16)skops->local_port);
    // remote_port is the big-endian port shifted into the upper half on little-endian hosts (an
    // old ABI quirk); bpf_ntohl yields the host-order port on either endianness.
    key->dst_port = bpf_htons((__u16)bpf_ntohl(skops->remote_port));
}

static __always_inline int is_pod_address(const struct ambit_dial_key *key,
                                          const struct ambit_netns_config *cfg)
{
    const __u32 *d = (const __u32 *)key->dst;
    if (key->family == AMBIT_AF_INET)
        return cfg->pod_ip4 != 0 && d[0] == cfg->pod_ip4;
    const __u32 *pod = (const __u32 *)cfg->pod_ip6;
    return (pod[0] | pod[1] | pod[2] | pod[3]) != 0 && d[0] == pod[0] && d[1] == pod[1] &&
           d[2] == pod[2] && d[3] == pod[3];
}

static __always_inline void sockops_connect(struct bpf_sock_ops *skops)
{
    __u64 cookie = bpf_get_socket_cookie(skops);
    struct ambit_orig_dst *rec = bpf_map_lookup_elem(&orig_dst_by_cookie, &cookie);
    if (rec) {
        // A captured connection: make the record findable from the agent's accepted socket.
        struct ambit_tuple_key key = {};
        tuple_from_sockops(skops, rec->netns_cookie, &key);
        struct ambit_orig_dst copy = *rec;
        bpf_map_update_elem(&orig_dst_by_tuple, &key, &copy, BPF_ANY);
    } else {
        // Not captured: a dial to the pod's own address? Then sk_lookup must let its SYN through.
        __u64 netns = bpf_get_netns_cookie(skops);
        const struct ambit_netns_config *cfg = bpf_map_lookup_elem(&enrolled_netns, &netns);
        if (!cfg)
            return;
        struct ambit_dial_key key = {};
        dial_from_sockops(skops, &key);
        if (!is_pod_address(&key, cfg))
            return;
        __u32 one = 1;
        bpf_map_update_elem(&local_dials, &key, &one, BPF_ANY);
    }
    // Get BPF_SOCK_OPS_STATE_CB for this socket so its records are deleted when it closes.
    bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
}

static __always_inline void sockops_close(struct bpf_sock_ops *skops)
{
    __u64 cookie = bpf_get_socket_cookie(skops);
    struct ambit_orig_dst *rec = bpf_map_lookup_elem(&orig_dst_by_cookie, &cookie);
    if (rec) {
        struct ambit_tuple_key key = {};
        tuple_from_sockops(skops, rec->netns_cookie, &key);
        // Only delete the tuple entry if it is still ours (the port may have been reused).
        struct ambit_orig_dst *cur = bpf_map_lookup_elem(&orig_dst_by_tuple, &key);
        if (cur && cur->socket_cookie == cookie)
            bpf_map_delete_elem(&orig_dst_by_tuple, &key);
        bpf_map_delete_elem(&orig_dst_by_cookie, &cookie);
    } else {
        struct ambit_dial_key key = {};
        dial_from_sockops(skops, &key);
        bpf_map_delete_elem(&local_dials, &key);
    }
}

// TCP_CONNECT_CB runs after the local port is chosen and before the SYN leaves, so the records
// exist before the agent can accept the connection or sk_lookup sees the SYN. STATE_CB (enabled
// only for sockets with a record) deletes them when the socket closes, including a failed connect.
SEC("sockops")
int ambit_sockops(struct bpf_sock_ops *skops)
{
    __u32 op = skops->op;
    if (op == BPF_SOCK_OPS_TCP_CONNECT_CB)
        sockops_connect(skops);
    else if (op == BPF_SOCK_OPS_STATE_CB && skops->args[1] == BPF_TCP_CLOSE)
        sockops_close(skops);
    return 1;
}

// getsockopt(SOL_IP, SO_ORIGINAL_DST) / getsockopt(SOL_IPV6, IP6T_SO_ORIGINAL_DST) on the agent's
// accepted 15001 socket: the kernel's own answer (ENOPROTOOPT without nf_conntrack, ENOENT with it)
// is replaced by a sockaddr_in / sockaddr_in6 of the recorded destination. Everything else, and
// sockets without a record, pass untouched.
SEC("cgroup/getsockopt")
int ambit_getsockopt(struct bpf_sockopt *ctx)
{
    if (ctx->optname != SO_ORIGINAL_DST || (ctx->level != SOL_IP && ctx->level != SOL_IPV6))
        return 1;
    struct bpf_sock *sk = ctx->sk;
    if (!sk || sk->protocol != IPPROTO_TCP)
        return 1;

    struct ambit_tuple_key key = {};
    __u32 *addr = (__u32 *)key.addr;
    key.netns_cookie = bpf_get_netns_cookie(ctx);
    key.port = sk->dst_port;
    if (sk->family == AF_INET) {
        key.family = AMBIT_AF_INET;
        addr[0] = sk->dst_ip4;
    } else if (sk->family == AF_INET6) {
        __u32 ip6[4] = {sk->dst_ip6[0], sk->dst_ip6[1], sk->dst_ip6[2], sk->dst_ip6[3]};
        if (is_v4_mapped(ip6)) {
            key.family = AMBIT_AF_INET;
            addr[0] = ip6[3];
        } else {
            key.family = AMBIT_AF_INET6;
            addr[0] = ip6[0];
            addr[1] = ip6[1];
            addr[2] = ip6[2];
            addr[3] = ip6[3];
        }
    } else {
        return 1;
    }
    struct ambit_orig_dst *rec = bpf_map_lookup_elem(&orig_dst_by_tuple, &key);
    if (!rec)
        return 1;

    void *optval = ctx->optval;
    void *end = ctx->optval_end;
    if (ctx->level == SOL_IP && rec->family == AMBIT_AF_INET) {
        struct ambit_sockaddr_in *sin = optval;
        if ((void *)(sin + 1) > end)
            return 1;
        sin->family = AF_INET;
        sin->port = rec->port;
        sin->addr = *(__u32 *)rec->addr;
        sin->zero[0] = 0;
        sin->zero[1] = 0;
        ctx->optlen = sizeof(*sin);
        ctx->retval = 0;
    } else if (ctx->level == SOL_IPV6 && rec->family == AMBIT_AF_INET6) {
        struct ambit_sockaddr_in6 *sin6 = optval;
        if ((void *)(sin6 + 1) > end)
            return 1;
        const __u32 *a = (const __u32 *)rec->addr;
        sin6->family = AF_INET6;
        sin6->port = rec->port;
        sin6->flowinfo = 0;
        sin6->addr[0] = a[0];
        sin6->addr[1] = a[1];
        sin6->addr[2] = a[2];
        sin6->addr[3] = a[3];
        sin6->scope_id = 0;
        ctx->optlen = sizeof(*sin6);
        ctx->retval = 0;
    }
    return 1;
}

// The app's getpeername() reports the original destination instead of 127.0.0.1:15001.
SEC("cgroup/getpeername4")
int ambit_getpeername4(struct bpf_sock_addr *ctx)
{
    __u64 cookie = bpf_get_socket_cookie(ctx);
    struct ambit_orig_dst *rec = bpf_map_lookup_elem(&orig_dst_by_cookie, &cookie);
    if (!rec || rec->family != AMBIT_AF_INET)
        return 1;
    ctx->user_ip4 = *(__u32 *)rec->addr;
    ctx->user_port = rec->port;
    return 1;
}

SEC("cgroup/getpeername6")
int ambit_getpeername6(struct bpf_sock_addr *ctx)
{
    __u64 cookie = bpf_get_socket_cookie(ctx);
    struct ambit_orig_dst *rec = bpf_map_lookup_elem(&orig_dst_by_cookie, &cookie);
    if (!rec)
        return 1;
    const __u32 *a = (const __u32 *)rec->addr;
    if (rec->family == AMBIT_AF_INET) {
        ctx->user_ip6[0] = 0;
        ctx->user_ip6[1] = 0;
        ctx->user_ip6[2] = bpf_htonl(0x0000ffff);
        ctx->user_ip6[3] = a[0];
    } else {
        ctx->user_ip6[0] = a[0];
        ctx->user_ip6[1] = a[1];
        ctx->user_ip6[2] = a[2];
        ctx->user_ip6[3] = a[3];
    }
    ctx->user_port = rec->port;
    return 1;
}

// Inbound: attached to each enrolled pod's netns (BPF_SK_LOOKUP link on the netns fd). Runs when a
// TCP SYN finds no established socket. Not redirected: SYNs to the agent's ports, kubelet probes,
// SYNs to 127/8 and ::1, and SYNs of connections dialed inside the pod to the pod's own address
// (local_dials: the agent's IP_TRANSPARENT dial from the client's IP to the app, the app calling
// itself). ctx->ingress_ifindex cannot single those out: a locally routed packet to the pod address
// reports the device holding that address (eth0, rt_iif), not lo, exactly like traffic from outside
// (verified on 6.18); for 127/8 and ::1 it is lo, which the address test covers. Everything else
// is given to the agent's listener, whose accepted socket keeps the original local address and the
// real peer. The listener is found by the SYN's destination (the pod IP): bpf_get_netns_cookie is
// not available to sk_lookup. With no listener registered for that address the SYN is refused
// (RST): capture fails closed, as an nftables REDIRECT to a closed port does.
SEC("sk_lookup")
int ambit_sk_lookup(struct bpf_sk_lookup *ctx)
{
    if (ctx->protocol != IPPROTO_TCP)
        return SK_PASS;
    __u32 port = ctx->local_port;
    if (port == AMBIT_PORT_HBONE || port == AMBIT_PORT_INBOUND_PLAINTEXT ||
        port == AMBIT_PORT_OUTBOUND || port == AMBIT_PORT_DNS)
        return SK_PASS;

    struct ambit_dial_key dial = {};
    __u32 *src = (__u32 *)dial.src, *dst = (__u32 *)dial.dst;
    if (ctx->family == AF_INET) {
        if ((bpf_ntohl(ctx->local_ip4) >> 24) == 127 ||
            ctx->remote_ip4 == bpf_htonl(AMBIT_KUBELET_PROBE_IP4))
            return SK_PASS;
        dial.family = AMBIT_AF_INET;
        src[0] = ctx->remote_ip4;
        dst[0] = ctx->local_ip4;
    } else {
        if (ctx->local_ip6[0] == 0 && ctx->local_ip6[1] == 0 && ctx->local_ip6[2] == 0 &&
            ctx->local_ip6[3] == bpf_htonl(1))
            return SK_PASS; // ::1
        dial.family = AMBIT_AF_INET6;
        src[0] = ctx->remote_ip6[0];
        src[1] = ctx->remote_ip6[1];
        src[2] = ctx->remote_ip6[2];
        src[3] = ctx->remote_ip6[3];
        dst[0] = ctx->local_ip6[0];
        dst[1] = ctx->local_ip6[1];
        dst[2] = ctx->local_ip6[2];
        dst[3] = ctx->local_ip6[3];
    }
    dial.src_port = ctx->remote_port;
    dial.dst_port = bpf_htons((__u16)port);
    if (bpf_map_lookup_elem(&local_dials, &dial))
        return SK_PASS;

    struct ambit_listener_key key = {};
    key.family = dial.family;
    __builtin_memcpy(key.addr, dial.dst, sizeof(key.addr));
    struct bpf_sock *sk = bpf_map_lookup_elem(&inbound_listeners, &key);
    if (!sk)
        return SK_DROP;
    long err = bpf_sk_assign(ctx, sk, 0);
    bpf_sk_release(sk);
    return err ? SK_DROP : SK_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
