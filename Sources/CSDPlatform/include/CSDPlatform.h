// CSDPlatform: the few things Swift's Glibc/Darwin overlays do not expose.
#ifndef CSD_PLATFORM_H
#define CSD_PLATFORM_H

/// 1 when the CPU can run AVX2 code (and the OS saves the YMM registers), else 0.
int csd_cpu_has_avx2(void);

/// renameat2(2) with flags (RENAME_NOREPLACE = 1, RENAME_EXCHANGE = 2). Returns 0 or -1 with errno set.
/// On systems without renameat2, RENAME_NOREPLACE is emulated with link(2)+unlink(2) for files
/// and fails with ENOSYS otherwise.
int csd_renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned int flags);

/// Returns memory the process has freed to the system (glibc's malloc_trim(0)); nothing elsewhere.
void csd_release_free_memory(void);

/// copy_file_range(2) from the files' current offsets: bytes copied, 0 at the end, or -1 with errno set
/// (ENOSYS where the system has no such call).
long csd_copy_file_range(int in_fd, int out_fd, unsigned long length);

/// syncfs(2): flushes the filesystem holding fd. 0 or -1 with errno (fsync of fd where there is no syncfs).
int csd_syncfs(int fd);

#endif
