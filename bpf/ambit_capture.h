/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Map keys and values shared by ambit_capture.bpf.c and the agent (ambit-node, through libbpf).
 * Only fixed-width types, explicit padding, no pointers: the Swift side mirrors these byte for byte
 * (or includes this header from the CLibBPF shim). Addresses and ports are in NETWORK byte order
 * everywhere, exactly as in a sockaddr; an IPv4 address occupies addr[0..3] and addr[4..15] are 0.
 */
#ifndef AMBIT_CAPTURE_H
#define AMBIT_CAPTURE_H

#ifndef __bpf__ /* user space; BPF code gets the types from ambit_bpf_types.h or vmlinux.h */
#include <linux/types.h>
#endif

/* Ports and marks of the in-pod capture (same as the nftables backend, MeshPorts / MeshMarks). */
#define AMBIT_PORT_OUTBOUND 15001
#define AMBIT_PORT_INBOUND_PLAINTEXT 15006
#define AMBIT_PORT_HBONE 15008
#define AMBIT_PORT_DNS 15053
#define AMBIT_MARK_MASK 0xfff
#define AMBIT_MARK_AGENT 0x539       /* every agent socket: never captured */
#define AMBIT_MARK_RETURN_PATH 0x111 /* agent's IP_TRANSPARENT dials to the app: never captured */
/* Kubelet probes arrive SNAT-ed from this address and are not captured (as with nftables). */
#define AMBIT_KUBELET_PROBE_IP4 0xa9fe077f /* 169.254.7.127, host byte order */

#define AMBIT_AF_INET 2
#define AMBIT_AF_INET6 10

/*
 * enrolled_netns: BPF_MAP_TYPE_HASH, key __u64 netns cookie (getsockopt(SOL_SOCKET,
 * SO_NETNS_COOKIE=71) on any socket created in the pod netns), value struct ambit_netns_config.
 * Written by the agent when a pod enters the mesh, deleted when it leaves.
 */
struct ambit_netns_config {
    __u32 flags;        /* reserved, 0 */
    __u32 pod_ip4;      /* the pod's IPv4 address or 0; connections to it are not captured */
    __u8 pod_ip6[16];   /* the pod's IPv6 address or ::; connections to it are not captured */
};

/*
 * A captured connection's original destination.
 * orig_dst_by_cookie: BPF_MAP_TYPE_LRU_HASH, key __u64 socket cookie of the app's socket.
 * orig_dst_by_tuple:  BPF_MAP_TYPE_LRU_HASH, key struct ambit_tuple_key (see below).
 * Both written by the programs only; entries are deleted when the app's socket reaches TCP_CLOSE.
 */
struct ambit_orig_dst {
    __u64 netns_cookie;  /* netns of the app's socket */
    __u64 socket_cookie; /* the app's socket */
    __u16 family;        /* AMBIT_AF_INET or AMBIT_AF_INET6 */
    __be16 port;
    __u32 pad;           /* 0 */
    __u8 addr[16];
};

/*
 * Key of orig_dst_by_tuple: the app's (client's) local address and port as the agent's accepted
 * 15001 socket sees them as its peer (getpeername), in the app's netns. IPv4-mapped IPv6 client
 * addresses are stored as AMBIT_AF_INET.
 */
struct ambit_tuple_key {
    __u64 netns_cookie;
    __u16 family;
    __be16 port;
    __u32 pad;          /* 0 */
    __u8 addr[16];
};

/*
 * local_dials: BPF_MAP_TYPE_LRU_HASH, key struct ambit_dial_key, value __u32 (1). Connections made
 * inside an enrolled netns to the pod's own address (the agent's IP_TRANSPARENT dial from the
 * client's IP to the app, or the app calling itself): sk_lookup must not redirect their SYN. On a
 * locally routed packet ingress_ifindex is the device that holds the pod address (eth0), not lo,
 * so the interface cannot tell them apart from traffic arriving from outside. Written by sockops at
 * TCP_CONNECT, deleted at TCP_CLOSE.
 */
struct ambit_dial_key {
    __u32 family;       /* AMBIT_AF_INET or AMBIT_AF_INET6 (v4-mapped stored as AF_INET) */
    __be16 src_port;    /* the dialing socket's local port */
    __be16 dst_port;    /* the app's port */
    __u8 src[16];       /* the dialing socket's local address (the client IP when transparent) */
    __u8 dst[16];       /* the pod address */
};

/*
 * inbound_listeners: BPF_MAP_TYPE_SOCKHASH, key struct ambit_listener_key, value __u64 (a socket
 * fd on update; reads return the socket cookie). The agent inserts its inbound plaintext listener
 * (bound to 0.0.0.0:15006 / [::]:15006 in the pod netns, SO_MARK 0x539) once per pod address: the
 * key is the pod IP, because sk_lookup programs cannot call bpf_get_netns_cookie (verified on 6.18:
 * "program of this type cannot use helper bpf_get_netns_cookie#122") and pod IPs are unique on a
 * node. The kernel removes an entry itself when its socket closes.
 */
struct ambit_listener_key {
    __u32 family;       /* AMBIT_AF_INET or AMBIT_AF_INET6 */
    __u8 addr[16];      /* the pod address (destination of the inbound SYN) */
};

/* The Swift mirror relies on these sizes (no implicit padding anywhere). */
_Static_assert(sizeof(struct ambit_netns_config) == 24, "ambit_netns_config");
_Static_assert(sizeof(struct ambit_orig_dst) == 40, "ambit_orig_dst");
_Static_assert(sizeof(struct ambit_tuple_key) == 32, "ambit_tuple_key");
_Static_assert(sizeof(struct ambit_dial_key) == 40, "ambit_dial_key");
_Static_assert(sizeof(struct ambit_listener_key) == 20, "ambit_listener_key");

#endif /* AMBIT_CAPTURE_H */
