#define _GNU_SOURCE
#include "CSDPlatform.h"
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/syscall.h>
#endif

int csd_cpu_has_avx2(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    // The AVX2 kernel is compiled for Haswell, which may also emit BMI1/BMI2/FMA instructions.
    return (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2")
            && __builtin_cpu_supports("fma")) ? 1 : 0;
#else
    return 0;
#endif
}

int csd_renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned int flags) {
#if defined(__linux__) && defined(SYS_renameat2)
    return (int)syscall(SYS_renameat2, olddirfd, oldpath, newdirfd, newpath, flags);
#else
    if (flags == 0) return renameat(olddirfd, oldpath, newdirfd, newpath);
    errno = ENOSYS;
    return -1;
#endif
}

#if defined(__GLIBC__)
#include <malloc.h>
void csd_release_free_memory(void) { malloc_trim(0); }
#else
void csd_release_free_memory(void) {}
#endif

long csd_copy_file_range(int in_fd, int out_fd, unsigned long length) {
#if defined(__linux__)
    return (long)copy_file_range(in_fd, NULL, out_fd, NULL, (size_t)length, 0);
#else
    (void)in_fd; (void)out_fd; (void)length;
    errno = ENOSYS;
    return -1;
#endif
}

int csd_syncfs(int fd) {
#if defined(__linux__)
    return syncfs(fd);
#else
    return fsync(fd);
#endif
}

int csd_pipe_cloexec(int fds[2]) {
#if defined(__linux__)
    return pipe2(fds, O_CLOEXEC);
#else
    if (pipe(fds) != 0) return -1;
    fcntl(fds[0], F_SETFD, FD_CLOEXEC);
    fcntl(fds[1], F_SETFD, FD_CLOEXEC);
    return 0;
#endif
}

int csd_spawn_close_from(void *actions, void *attributes, int lowest) {
#if defined(__APPLE__)
    (void)actions;
    (void)lowest;
    return posix_spawnattr_setflags((posix_spawnattr_t *)attributes, POSIX_SPAWN_CLOEXEC_DEFAULT);
#elif defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
    (void)attributes;
    return posix_spawn_file_actions_addclosefrom_np((posix_spawn_file_actions_t *)actions, lowest);
#else
    (void)attributes;
    (void)actions;
    (void)lowest;
    return ENOSYS;
#endif
}

#if defined(__linux__)
#include <sys/ioctl.h>
#include <linux/fs.h>
#endif

int csd_clone_file(int target_fd, int source_fd) {
#if defined(__linux__) && defined(FICLONE)
    return ioctl(target_fd, FICLONE, source_fd);
#else
    (void)target_fd;
    (void)source_fd;
    errno = EOPNOTSUPP;
    return -1;
#endif
}

int csd_spawn_new_session(void *attributes) {
#if defined(POSIX_SPAWN_SETSID)
    short flags = 0;
    posix_spawnattr_getflags((posix_spawnattr_t *)attributes, &flags);
    return posix_spawnattr_setflags((posix_spawnattr_t *)attributes, flags | POSIX_SPAWN_SETSID);
#else
    (void)attributes;
    return ENOSYS;
#endif
}

#include <sys/resource.h>
int csd_nice_this_thread(int niceness) {
#ifdef __linux__
    return setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), niceness);
#else
    (void)niceness;
    return 0;
#endif
}

#include <pthread.h>
int csd_set_thread_name(const char *name) {
#if defined(__APPLE__)
    return pthread_setname_np(name);
#elif defined(__linux__)
    return pthread_setname_np(pthread_self(), name);
#else
    (void)name;
    return 0;
#endif
}

#include <sys/socket.h>
#include <sys/types.h>
#if defined(__APPLE__)
#include <sys/un.h>
#include <sys/ucred.h>
#endif
int csd_peer_credentials(int fd, int *pid, unsigned int *uid) {
#if defined(__linux__)
    struct ucred credentials;
    socklen_t length = sizeof(credentials);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) != 0) return -1;
    *pid = credentials.pid;
    *uid = credentials.uid;
    return 0;
#elif defined(__APPLE__)
    uid_t u;
    gid_t g;
    if (getpeereid(fd, &u, &g) != 0) return -1;
    pid_t p = 0;
    socklen_t length = sizeof(p);
    if (getsockopt(fd, SOL_LOCAL, LOCAL_PEERPID, &p, &length) != 0) return -1;
    *pid = p;
    *uid = u;
    return 0;
#else
    (void)fd; (void)pid; (void)uid;
    errno = ENOSYS;
    return -1;
#endif
}

#if defined(__linux__)
#include <linux/openat2.h>
#endif
int csd_open_beneath(int dirfd, const char *path, int flags, unsigned int mode) {
#if defined(__linux__) && defined(SYS_openat2)
    struct open_how how = {0};
    how.flags = (unsigned long long)(flags | O_CLOEXEC);
    how.mode = (flags & O_CREAT) ? mode : 0;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    long fd;
    int tries = 0;
    /* EAGAIN: a rename or mount raced the lookup (the kernel then refuses rather than guess); try again. */
    do {
        fd = syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
    } while (fd < 0 && (errno == EINTR || errno == EAGAIN) && ++tries < 16);
    return (int)fd;
#else
    (void)dirfd; (void)path; (void)flags; (void)mode;
    errno = ENOSYS;
    return -1;
#endif
}

long csd_raise_open_files_limit(long ceiling) {
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return -1;
    rlim_t wanted = limit.rlim_max;
    if (ceiling > 0 && wanted > (rlim_t)ceiling) wanted = (rlim_t)ceiling;
    if (wanted > limit.rlim_cur) {
        limit.rlim_cur = wanted;
        if (setrlimit(RLIMIT_NOFILE, &limit) != 0) return -1;
    }
    return (long)limit.rlim_cur;
}
