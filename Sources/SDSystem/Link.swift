import CSDPlatform

#if canImport(Glibc)
    @preconcurrency import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Hard links and reflinks, for deduplication.
extension FileSystem {
    /// Makes `new` (which must not exist) a hard link to the file `existing`: one inode, two names.
    public static func hardLink(_ existing: String, _ new: String) throws(SystemError) {
        guard link(existing, new) == 0 else { throw SystemError.current("link", path: new) }
    }

    /// Makes `to` (which must not exist) a reflink of `from`: its own file (own inode, permissions, times),
    /// sharing `from`'s blocks until either is written. Takes `from`'s permission bits and times.
    ///
    /// #### Errors
    /// `SystemError` with EOPNOTSUPP or EINVAL where the filesystem cannot share blocks (ext4, tmpfs), EXDEV
    /// across filesystems. `to` is removed when a step fails.
    public static func cloneFile(from: String, to: String) throws(SystemError) {
        try makeCopy(from: from, to: to) { source, target in
            csd_clone_file(target, source) == 0 ? nil : SystemError.current("reflink", path: to)
        }
    }

    /// Gives `path` these permission bits and modification time (its access time is left alone).
    public static func setModeAndTime(_ path: String, mode: UInt32, mtimeNanoseconds: Int64) throws(SystemError) {
        guard chmod(path, mode_t(mode & 0o7777)) == 0 else { throw SystemError.current("chmod", path: path) }
        var times = [
            timespec(tv_sec: 0, tv_nsec: utimeOmit),
            timespec(
                tv_sec: Int(mtimeNanoseconds / 1_000_000_000),
                tv_nsec: Int(mtimeNanoseconds % 1_000_000_000)
            ),
        ]
        guard utimensat(AT_FDCWD, path, &times, 0) == 0 else { throw SystemError.current("set times", path: path) }
    }

    #if os(Linux)
        private static let utimeOmit = (1 << 30) - 2
    #else
        private static let utimeOmit = -2
    #endif

    /// Filesystems whose files can share blocks (FICLONE); others refuse reflinks.
    public static let reflinkFilesystems: Set<String> = ["btrfs", "xfs", "bcachefs", "ocfs2"]
}
