#ifndef AMBIT_CLIBNFTNL_SHIM_H
#define AMBIT_CLIBNFTNL_SHIM_H
// libnftnl + libmnl from Debian's libnftnl-dev and libmnl-dev.
// Glibc's netinet/in.h first: linux/libc-compat.h then skips the UAPI copies of in_addr, sockaddr_in
// and in6_addr, which would otherwise clash with SwiftGlibc's in any Swift module importing both.
#include <netinet/in.h>
#include <libmnl/libmnl.h>
#include <libnftnl/batch.h>
#include <libnftnl/chain.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#endif
