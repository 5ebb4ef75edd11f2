#ifndef CKEELSYS_H
#define CKEELSYS_H
#include <spawn.h>
#include <sys/types.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>

/// prctl(PR_SET_PDEATHSIG): prctl is variadic, so Swift cannot call it directly.
int keel_set_parent_death_signal(int signal);

/// posix_spawn_file_actions_addclosefrom_np: hidden behind _GNU_SOURCE from Swift's Glibc.
int keel_spawn_file_actions_addclosefrom(posix_spawn_file_actions_t *actions, int lowfd);

/// pipe2: declared only under _GNU_SOURCE, which Swift's Glibc does not define.
int keel_pipe2(int fds[2], int flags);
/// eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC): sys/eventfd.h is not in Swift's Glibc module.
int keel_eventfd(void);
/// accept4: declared only under _GNU_SOURCE.
int keel_accept4(int fd, int flags);
/// memfd_create: declared only under _GNU_SOURCE.
int keel_memfd_create(const char *name, unsigned int flags);

/// epoll_create1(EPOLL_CLOEXEC): sys/epoll.h is not in Swift's Glibc module.
int keel_epoll_create(void);
/// epoll_ctl with the event built here: struct epoll_event is packed on x86_64, which Swift cannot lay out.
/// `op`: EPOLL_CTL_ADD/MOD/DEL; `data`: the 64-bit tag epoll hands back.
int keel_epoll_ctl(int epfd, int op, int fd, unsigned int events, unsigned long long data);
/// epoll_wait for one event: its tag in `*data`; returns 1, 0 on timeout, -1 with errno.
int keel_epoll_wait_one(int epfd, unsigned long long *data, int timeout_ms);
/// Event bits Swift's Glibc leaves out (EPOLLEXCLUSIVE, EPOLLONESHOT) with the plain ones.
extern const unsigned int keel_epollin;
extern const unsigned int keel_epollexclusive;
extern const unsigned int keel_epolloneshot;
extern const unsigned int keel_epollrdhup;
extern const int keel_epoll_ctl_add;
extern const int keel_epoll_ctl_mod;
extern const int keel_epoll_ctl_del;

/// openat2(2) with RESOLVE_BENEATH (symlinks may not leave dirfd) and RESOLVE_NO_MAGICLINKS when `beneath` is set, plain
/// openat semantics otherwise; glibc 2.36 has no wrapper. -1 with errno ENOSYS on kernels before 5.6.
int keel_openat_beneath(int dirfd, const char *path, int flags, int beneath);
/// O_PATH: declared only under _GNU_SOURCE (a directory descriptor to open beneath, needing no read permission).
extern const int keel_o_path;

/// The git commit the binary was built from (deploy/build-dist.sh), or "unknown".
const char *keel_git_commit(void);

#endif
