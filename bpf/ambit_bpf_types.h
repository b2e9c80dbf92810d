/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Minimal, hand-written subset of the kernel types used by ambit_capture.bpf.c, in place of a
 * generated vmlinux.h. Everything here is kernel UAPI (include/uapi/linux/bpf.h and friends): the
 * program contexts below are append-only ABI whose field accesses the verifier rewrites into the
 * real kernel structures, so no CO-RE relocation is needed and the object runs unchanged on every
 * kernel that has the hooks (see README.md, "Kernel features"). `./build.sh check` compiles the
 * program a second time against a vmlinux.h generated from /sys/kernel/btf/vmlinux and fails if the
 * two objects' instructions differ, which proves these layouts match the running kernel.
 */
#ifndef AMBIT_BPF_TYPES_H
#define AMBIT_BPF_TYPES_H

typedef unsigned char __u8;
typedef signed char __s8;
typedef unsigned short __u16;
typedef short __s16;
typedef unsigned int __u32;
typedef int __s32;
typedef unsigned long long __u64;
typedef long long __s64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u64 __be64;
typedef __u32 __wsum;

#define __bpf_md_ptr(type, name) \
    union {                      \
        type name;               \
        __u64 : 64;              \
    } __attribute__((aligned(8)))

/* enum bpf_map_type (only the members used). */
enum {
    BPF_MAP_TYPE_HASH = 1,
    BPF_MAP_TYPE_LRU_HASH = 9,
    BPF_MAP_TYPE_SOCKMAP = 15,
    BPF_MAP_TYPE_SOCKHASH = 18,
};

/* Map update flags. */
enum {
    BPF_ANY = 0,
    BPF_NOEXIST = 1,
    BPF_EXIST = 2,
};

/* sk_lookup verdicts. */
enum sk_action {
    SK_DROP = 0,
    SK_PASS,
};

/* sock_ops operations (enum in uapi/linux/bpf.h). */
enum {
    BPF_SOCK_OPS_VOID = 0,
    BPF_SOCK_OPS_TIMEOUT_INIT = 1,
    BPF_SOCK_OPS_RWND_INIT = 2,
    BPF_SOCK_OPS_TCP_CONNECT_CB = 3,
    BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB = 4,
    BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB = 5,
    BPF_SOCK_OPS_NEEDS_ECN = 6,
    BPF_SOCK_OPS_BASE_RTT = 7,
    BPF_SOCK_OPS_RTO_CB = 8,
    BPF_SOCK_OPS_RETRANS_CB = 9,
    BPF_SOCK_OPS_STATE_CB = 10,
};

/* bpf_sock_ops_cb_flags_set() flags. */
enum {
    BPF_SOCK_OPS_RTO_CB_FLAG = (1 << 0),
    BPF_SOCK_OPS_RETRANS_CB_FLAG = (1 << 1),
    BPF_SOCK_OPS_STATE_CB_FLAG = (1 << 2),
};

/* TCP states as reported to sock_ops (BPF_TCP_*). */
enum {
    BPF_TCP_ESTABLISHED = 1,
    BPF_TCP_SYN_SENT = 2,
    BPF_TCP_CLOSE = 7,
};

struct bpf_sock {
    __u32 bound_dev_if;
    __u32 family;
    __u32 type;
    __u32 protocol;
    __u32 mark;
    __u32 priority;
    __u32 src_ip4;
    __u32 src_ip6[4];
    __u32 src_port;   /* host byte order */
    __be16 dst_port;  /* network byte order */
    __u16 : 16;
    __u32 dst_ip4;
    __u32 dst_ip6[4];
    __u32 state;
    __s32 rx_queue_mapping;
};

struct bpf_sock_addr {
    __u32 user_family;
    __u32 user_ip4;    /* network byte order */
    __u32 user_ip6[4]; /* network byte order */
    __u32 user_port;   /* network byte order */
    __u32 family;
    __u32 type;
    __u32 protocol;
    __u32 msg_src_ip4;
    __u32 msg_src_ip6[4];
    __bpf_md_ptr(struct bpf_sock *, sk);
};

struct bpf_sock_ops {
    __u32 op;
    union {
        __u32 args[4];
        __u32 reply;
        __u32 replylong[4];
    };
    __u32 family;
    __u32 remote_ip4;    /* network byte order */
    __u32 local_ip4;     /* network byte order */
    __u32 remote_ip6[4]; /* network byte order */
    __u32 local_ip6[4];  /* network byte order */
    __u32 remote_port;   /* network byte order */
    __u32 local_port;    /* host byte order */
    __u32 is_fullsock;
    __u32 snd_cwnd;
    __u32 srtt_us;
    __u32 bpf_sock_ops_cb_flags;
    __u32 state;
    __u32 rtt_min;
    __u32 snd_ssthresh;
    __u32 rcv_nxt;
    __u32 snd_nxt;
    __u32 snd_una;
    __u32 mss_cache;
    __u32 ecn_flags;
    __u32 rate_delivered;
    __u32 rate_interval_us;
    __u32 packets_out;
    __u32 retrans_out;
    __u32 total_retrans;
    __u32 segs_in;
    __u32 data_segs_in;
    __u32 segs_out;
    __u32 data_segs_out;
    __u32 lost_out;
    __u32 sacked_out;
    __u32 sk_txhash;
    __u64 bytes_received;
    __u64 bytes_acked;
    __bpf_md_ptr(struct bpf_sock *, sk);
    __bpf_md_ptr(void *, skb_data);
    __bpf_md_ptr(void *, skb_data_end);
    __u32 skb_len;
    __u32 skb_tcp_flags;
};

struct bpf_sockopt {
    __bpf_md_ptr(struct bpf_sock *, sk);
    __bpf_md_ptr(void *, optval);
    __bpf_md_ptr(void *, optval_end);
    __s32 level;
    __s32 optname;
    __s32 optlen;
    __s32 retval;
};

struct bpf_sk_lookup {
    union {
        __bpf_md_ptr(struct bpf_sock *, sk);
        __u64 cookie;
    };
    __u32 family;
    __u32 protocol;
    __u32 remote_ip4;    /* network byte order */
    __u32 remote_ip6[4]; /* network byte order */
    __be16 remote_port;  /* network byte order */
    __u16 : 16;
    __u32 local_ip4;    /* network byte order */
    __u32 local_ip6[4]; /* network byte order */
    __u32 local_port;   /* host byte order */
    __u32 ingress_ifindex;
};

#endif /* AMBIT_BPF_TYPES_H */
