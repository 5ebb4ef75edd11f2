#define _GNU_SOURCE
#include "ckeelsys.h"
#include <sys/prctl.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/mman.h>

int keel_set_parent_death_signal(int signal) { return prctl(PR_SET_PDEATHSIG, (unsigned long)signal, 0, 0, 0); }

int keel_spawn_file_actions_addclosefrom(posix_spawn_file_actions_t *actions, int lowfd) {
    return posix_spawn_file_actions_addclosefrom_np(actions, lowfd);
}

int keel_pipe2(int fds[2], int flags) { return pipe2(fds, flags); }

int keel_accept4(int fd, int flags) { return accept4(fd, NULL, NULL, flags); }

int keel_memfd_create(const char *name, unsigned int flags) { return memfd_create(name, flags); }
