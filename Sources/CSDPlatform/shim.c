#define _GNU_SOURCE
#include "CSDPlatform.h"
#include <errno.h>
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
