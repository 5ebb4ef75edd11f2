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
/// accept4: declared only under _GNU_SOURCE.
int keel_accept4(int fd, int flags);
/// memfd_create: declared only under _GNU_SOURCE.
int keel_memfd_create(const char *name, unsigned int flags);

#endif
