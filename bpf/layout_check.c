/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Prints the offset and size of every context field of ambit_bpf_types.h. Compiled for the host
 * twice by `./build.sh check`: once with ambit_bpf_types.h, once with a vmlinux.h generated from
 * the running kernel's BTF (-DAMBIT_USE_VMLINUX_H). Identical output proves the minimal header
 * matches the kernel.
 */
/* No libc headers: vmlinux.h clashes with them (wchar_t, ...). */
int printf(const char *format, ...);
#ifdef AMBIT_USE_VMLINUX_H
#define BPF_NO_PRESERVE_ACCESS_INDEX
#include "vmlinux.h"
#else
#include "ambit_bpf_types.h"
#endif

#define F(s, m)                                                                  \
    printf("%-14s %-22s off=%3lu size=%lu\n", #s, #m,                             \
           (unsigned long)__builtin_offsetof(struct s, m), (unsigned long)sizeof(((struct s *)0)->m));
#define E(v) printf("%-37s = %d\n", #v, (int)(v));

int main(void)
{
    F(bpf_sock, bound_dev_if) F(bpf_sock, family) F(bpf_sock, type) F(bpf_sock, protocol)
    F(bpf_sock, mark) F(bpf_sock, priority) F(bpf_sock, src_ip4) F(bpf_sock, src_ip6)
    F(bpf_sock, src_port) F(bpf_sock, dst_port) F(bpf_sock, dst_ip4) F(bpf_sock, dst_ip6)
    F(bpf_sock, state) F(bpf_sock, rx_queue_mapping)
    F(bpf_sock_addr, user_family) F(bpf_sock_addr, user_ip4) F(bpf_sock_addr, user_ip6)
    F(bpf_sock_addr, user_port) F(bpf_sock_addr, family) F(bpf_sock_addr, type)
    F(bpf_sock_addr, protocol) F(bpf_sock_addr, msg_src_ip4) F(bpf_sock_addr, msg_src_ip6)
    F(bpf_sock_addr, sk)
    F(bpf_sock_ops, op) F(bpf_sock_ops, args) F(bpf_sock_ops, reply) F(bpf_sock_ops, family)
    F(bpf_sock_ops, remote_ip4) F(bpf_sock_ops, local_ip4) F(bpf_sock_ops, remote_ip6)
    F(bpf_sock_ops, local_ip6) F(bpf_sock_ops, remote_port) F(bpf_sock_ops, local_port)
    F(bpf_sock_ops, is_fullsock) F(bpf_sock_ops, bpf_sock_ops_cb_flags) F(bpf_sock_ops, state)
    F(bpf_sock_ops, bytes_acked) F(bpf_sock_ops, sk) F(bpf_sock_ops, skb_data)
    F(bpf_sock_ops, skb_data_end) F(bpf_sock_ops, skb_len) F(bpf_sock_ops, skb_tcp_flags)
    F(bpf_sockopt, sk) F(bpf_sockopt, optval) F(bpf_sockopt, optval_end) F(bpf_sockopt, level)
    F(bpf_sockopt, optname) F(bpf_sockopt, optlen) F(bpf_sockopt, retval)
    F(bpf_sk_lookup, sk) F(bpf_sk_lookup, cookie) F(bpf_sk_lookup, family)
    F(bpf_sk_lookup, protocol) F(bpf_sk_lookup, remote_ip4) F(bpf_sk_lookup, remote_ip6)
    F(bpf_sk_lookup, remote_port) F(bpf_sk_lookup, local_ip4) F(bpf_sk_lookup, local_ip6)
    F(bpf_sk_lookup, local_port) F(bpf_sk_lookup, ingress_ifindex)
    E(BPF_MAP_TYPE_HASH) E(BPF_MAP_TYPE_LRU_HASH) E(BPF_MAP_TYPE_SOCKMAP) E(BPF_MAP_TYPE_SOCKHASH)
    E(BPF_ANY) E(SK_DROP) E(SK_PASS) E(BPF_SOCK_OPS_TCP_CONNECT_CB)
    E(BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB) E(BPF_SOCK_OPS_STATE_CB) E(BPF_SOCK_OPS_STATE_CB_FLAG)
    E(BPF_TCP_ESTABLISHED) E(BPF_TCP_SYN_SENT) E(BPF_TCP_CLOSE)
    return 0;
}
