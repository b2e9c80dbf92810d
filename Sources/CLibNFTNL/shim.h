#ifndef AMBIT_CLIBNFTNL_SHIM_H
#define AMBIT_CLIBNFTNL_SHIM_H
// libnftnl + libmnl from Debian's libnftnl-dev and libmnl-dev.
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
