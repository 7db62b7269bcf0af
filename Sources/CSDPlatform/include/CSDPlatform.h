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


/// pipe(2) with both ends close-on-exec (pipe2 where there is one). 0 or -1 with errno.
int csd_pipe_cloexec(int fds[2]);

/// Makes a spawned child close every descriptor from `lowest` up (glibc 2.34+: addclosefrom_np; macOS: the
/// CLOEXEC_DEFAULT flag). 0, or an errno (ENOSYS where neither exists).
/// (`actions` is a posix_spawn_file_actions_t *, `attributes` a posix_spawnattr_t *.)
int csd_spawn_close_from(void *actions, void *attributes, int lowest);

/// ioctl(FICLONE): makes `target_fd`'s content share `source_fd`'s blocks (btrfs, XFS with reflink, bcachefs).
/// 0 or -1 with errno (EOPNOTSUPP or EINVAL where the filesystem cannot; EXDEV across filesystems).
int csd_clone_file(int target_fd, int source_fd);

/// Makes a spawned child lead a new session (POSIX_SPAWN_SETSID): no controlling terminal, not in our process
/// group, so it outlives the terminal that started it. 0, or an errno (ENOSYS where there is no such flag).
int csd_spawn_new_session(void *attributes);

/// The process and user at the other end of a connected Unix socket (SO_PEERCRED on Linux, getpeereid and
/// LOCAL_PEERPID on macOS). 0, or -1 with errno.
int csd_peer_credentials(int fd, int *pid, unsigned int *uid);

/// openat2(2) with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS: opens `path` (relative) below
/// the folder `dirfd`, refusing any symbolic link on the way and any way out of it (ELOOP, EXDEV). A descriptor,
/// or -1 with errno (ENOSYS where the kernel has no openat2: then walk the components with O_NOFOLLOW).
int csd_open_beneath(int dirfd, const char *path, int flags, unsigned int mode);

/// Raises this process's soft limit of open descriptors to its hard limit (at most `ceiling`). The new soft
/// limit, or -1 with errno.
long csd_raise_open_files_limit(long ceiling);

#endif

/// Lowers the calling thread's scheduling priority to `niceness` (Linux: threads it starts later inherit
/// it). Returns 0, or -1 with errno set.
int csd_nice_this_thread(int niceness);

/// Names the calling thread (Linux keeps at most 15 bytes and refuses a longer name). Returns 0 or an errno.
int csd_set_thread_name(const char *name);
