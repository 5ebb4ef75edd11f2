#define _GNU_SOURCE
#include "ckeelsys.h"
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/mman.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <linux/openat2.h>
#include <string.h>
#include <fcntl.h>

int keel_set_parent_death_signal(int signal) { return prctl(PR_SET_PDEATHSIG, (unsigned long)signal, 0, 0, 0); }

int keel_spawn_file_actions_addclosefrom(posix_spawn_file_actions_t *actions, int lowfd) {
    return posix_spawn_file_actions_addclosefrom_np(actions, lowfd);
}

int keel_pipe2(int fds[2], int flags) { return pipe2(fds, flags); }
int keel_eventfd(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }

int keel_accept4(int fd, int flags) { return accept4(fd, NULL, NULL, flags); }

int keel_memfd_create(const char *name, unsigned int flags) { return memfd_create(name, flags); }

int keel_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

int keel_epoll_ctl(int epfd, int op, int fd, unsigned int events, unsigned long long data) {
    struct epoll_event event = {.events = events, .data = {.u64 = data}};
    return epoll_ctl(epfd, op, fd, &event);
}

int keel_epoll_wait_one(int epfd, unsigned long long *data, int timeout_ms) {
    struct epoll_event event;
    int count = epoll_wait(epfd, &event, 1, timeout_ms);
    if (count == 1) *data = event.data.u64;
    return count;
}

const unsigned int keel_epollin = EPOLLIN;
const unsigned int keel_epollexclusive = EPOLLEXCLUSIVE;
const unsigned int keel_epolloneshot = EPOLLONESHOT;
const unsigned int keel_epollrdhup = EPOLLRDHUP;
const int keel_epoll_ctl_add = EPOLL_CTL_ADD;
const int keel_epoll_ctl_mod = EPOLL_CTL_MOD;
const int keel_epoll_ctl_del = EPOLL_CTL_DEL;

int keel_openat_beneath(int dirfd, const char *path, int flags, int beneath) {
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = (unsigned long long)flags;
    how.resolve = beneath ? (RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS) : 0;
    return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}

const int keel_o_path = O_PATH;

// deploy/build-dist.sh passes the commit as -Xcc -DKEEL_GIT_COMMIT="\"…\""; other builds cannot know it.
const char *keel_git_commit(void) {
#ifdef KEEL_GIT_COMMIT
    return KEEL_GIT_COMMIT;
#else
    return "unknown";
#endif
}
