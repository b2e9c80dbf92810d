#ifndef AMBIT_CLIBBPF_SHIM_H
#define AMBIT_CLIBBPF_SHIM_H
// libbpf from Debian's libbpf-dev (1.1 on Debian 12).
#include <bpf/libbpf.h>
#include <bpf/bpf.h>
#endif
