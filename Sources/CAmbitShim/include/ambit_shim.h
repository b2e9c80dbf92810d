#ifndef AMBIT_SHIM_H
#define AMBIT_SHIM_H
// The few Linux calls Swift cannot express directly: CMSG_* macros for passing file
// descriptors, struct ucred (needs _GNU_SOURCE), setns, gettid, glibc's malloc.h, and one
// BoringSSL option swift-nio-ssl does not expose.
#include <sys/types.h>

/// setns(fd, CLONE_NEWNET) for the calling thread. Returns 0, or -1 with errno set.
int ambit_setns_net(int fd);

/// sendmsg of `len` bytes, with `fd` attached as SCM_RIGHTS unless it is negative.
ssize_t ambit_send_fd(int sock, const void *buf, size_t len, int fd);

/// recvmsg into `buf`; `*fd_out` is the first SCM_RIGHTS descriptor received (close-on-exec), or -1.
/// Extra descriptors are closed. Returns -1 with errno EMSGSIZE when the payload or the control
/// data was truncated (any received descriptor is closed then).
ssize_t ambit_recv_fd(int sock, void *buf, size_t len, int *fd_out);

/// The kernel thread id of the calling thread.
pid_t ambit_gettid(void);

/// Names the calling thread (truncated to the kernel's 15 characters), for ps and debuggers.
void ambit_set_thread_name(const char *name);

/// accept4(sock, NULL, NULL, SOCK_CLOEXEC), retried on EINTR (accept4 needs _GNU_SOURCE).
int ambit_accept_cloexec(int sock);

/// SO_PEERCRED of a connected AF_UNIX socket. Returns 0, or -1 with errno set.
int ambit_peer_credentials(int sock, pid_t *pid, uid_t *uid, gid_t *gid);

/// Bytes free in the allocator's arenas (glibc mallinfo2().fordblks).
size_t ambit_heap_free_bytes(void);

/// malloc_trim(0): returns free heap memory to the kernel. Returns 1 if any was released.
int ambit_heap_trim(void);

/// Removes `capability` (e.g. 12, CAP_NET_ADMIN) from the calling thread's effective set only
/// (capset acts per thread): lets a test run an event loop as an unprivileged process would.
/// Returns 0, or -1 with errno set.
int ambit_drop_thread_capability(int capability);

/// Sets SSL_OP_NO_TICKET on a BoringSSL SSL_CTX of swift-nio-ssl: a server then issues no TLS
/// session tickets, so no client can resume a session. Returns 0, or -1 when the option could not
/// be set (no context, or no BoringSSL linked).
int ambit_tls_disable_session_tickets(void *ssl_ctx);

#endif
