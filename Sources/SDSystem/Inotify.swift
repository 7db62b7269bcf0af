#if canImport(Glibc)
    @preconcurrency import Glibc

    /// What an inotify watch reports. The raw values are Linux's `IN_*` bits.
    public struct InotifyMask: OptionSet, Sendable, Hashable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }

        public static let modify = InotifyMask(rawValue: 0x0000_0002)
        public static let attributes = InotifyMask(rawValue: 0x0000_0004)
        public static let closeWrite = InotifyMask(rawValue: 0x0000_0008)
        public static let movedFrom = InotifyMask(rawValue: 0x0000_0040)
        public static let movedTo = InotifyMask(rawValue: 0x0000_0080)
        public static let create = InotifyMask(rawValue: 0x0000_0100)
        public static let delete = InotifyMask(rawValue: 0x0000_0200)
        public static let deleteSelf = InotifyMask(rawValue: 0x0000_0400)
        public static let moveSelf = InotifyMask(rawValue: 0x0000_0800)
        /// The filesystem holding the watched folder was unmounted.
        public static let unmount = InotifyMask(rawValue: 0x0000_2000)
        /// The kernel's queue overflowed: events were lost (the event's watch is -1).
        public static let queueOverflow = InotifyMask(rawValue: 0x0000_4000)
        /// The watch was removed (explicitly, or because its folder was deleted or unmounted).
        public static let ignored = InotifyMask(rawValue: 0x0000_8000)
        /// Watch only if the path is a folder.
        public static let onlyDirectory = InotifyMask(rawValue: 0x0100_0000)
        /// Do not follow a final symlink.
        public static let dontFollow = InotifyMask(rawValue: 0x0200_0000)
        /// Stop reporting a child once it is unlinked (even while it is still open).
        public static let excludeUnlinked = InotifyMask(rawValue: 0x0400_0000)
        /// The event's subject is a folder.
        public static let isDirectory = InotifyMask(rawValue: 0x4000_0000)

        /// What the indexer watches a folder for: every change to its entries and to itself.
        public static let folderChanges: InotifyMask = [
            .modify, .attributes, .closeWrite, .movedFrom, .movedTo, .create, .delete, .deleteSelf, .moveSelf,
            .onlyDirectory, .dontFollow, .excludeUnlinked,
        ]
    }

    /// One inotify event: the watch it came from, what happened, the rename cookie, and the child's name (empty
    /// when the event is about the watched folder itself).
    public struct InotifyEvent: Sendable {
        public var watch: Int32
        public var mask: InotifyMask
        public var cookie: UInt32
        public var name: [UInt8]

        public init(watch: Int32, mask: InotifyMask, cookie: UInt32, name: [UInt8]) {
            self.watch = watch
            self.mask = mask
            self.cookie = cookie
            self.name = name
        }
    }

    /// An inotify instance: watches on folders, and their events read in batches.
    ///
    /// Watches and reads may come from different threads (the kernel serialises them); reading itself should be
    /// done by one thread.
    public final class Inotify: Sendable {
        public let descriptor: Int32

        /// #### Errors
        /// `SystemError` (EMFILE when the per-user instance limit, `fs.inotify.max_user_instances`, is reached).
        public init() throws(SystemError) {
            let fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
            guard fd >= 0 else { throw SystemError.current("inotify_init1", path: nil) }
            descriptor = fd
        }

        deinit { close(descriptor) }

        /// Watches the folder at `path`; returns the watch descriptor. Watching a folder already watched returns
        /// its existing descriptor (the kernel watches inodes, and a watch follows its folder when it is renamed).
        ///
        /// #### Errors
        /// `SystemError`; `isWatchLimit` when `fs.inotify.max_user_watches` is exhausted (ENOSPC).
        public func addWatch(_ path: [UInt8], mask: InotifyMask = .folderChanges) throws(SystemError) -> Int32 {
            let wd = path.withCString { inotify_add_watch(descriptor, $0, mask.rawValue) }
            guard wd >= 0 else { throw SystemError.current("watch", path: String(decoding: path, as: UTF8.self)) }
            return wd
        }

        public func removeWatch(_ watch: Int32) {
            _ = inotify_rm_watch(descriptor, watch)
        }

        /// Waits up to `timeoutMilliseconds` (-1: forever) for events, then returns every event queued now.
        /// An empty result means the time ran out.
        public func read(timeoutMilliseconds: Int32) throws(SystemError) -> [InotifyEvent] {
            var events: [InotifyEvent] = []
            var waitFor = timeoutMilliseconds
            var buffer = [UInt8](repeating: 0, count: 64 * 1024)
            while true {
                var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
                let ready = retryingEINTR { poll(&poller, 1, waitFor) }
                if ready < 0 { throw SystemError.current("poll inotify", path: nil) }
                if ready == 0 { return events }
                let n = buffer.withUnsafeMutableBytes { raw in
                    retryingEINTR { Glibc.read(descriptor, raw.baseAddress, raw.count) }
                }
                if n < 0 {
                    if Glibc_errno() == EAGAIN { return events }
                    throw SystemError.current("read inotify", path: nil)
                }
                Self.decode(buffer[..<n], into: &events)
                // Drain what is already queued, without waiting again.
                waitFor = 0
            }
        }

        /// Decodes `struct inotify_event` records: a 16-byte header (wd, mask, cookie, len) and `len` bytes of
        /// NUL-padded name.
        static func decode(_ bytes: ArraySlice<UInt8>, into events: inout [InotifyEvent]) {
            var offset = bytes.startIndex
            func u32(_ at: Int) -> UInt32 {
                UInt32(bytes[at]) | UInt32(bytes[at + 1]) << 8 | UInt32(bytes[at + 2]) << 16
                    | UInt32(bytes[at + 3]) << 24
            }
            while offset + 16 <= bytes.endIndex {
                let wd = Int32(bitPattern: u32(offset))
                let mask = u32(offset + 4)
                let cookie = u32(offset + 8)
                let length = Int(u32(offset + 12))
                let nameStart = offset + 16
                guard nameStart + length <= bytes.endIndex else { break }
                var nameEnd = nameStart
                while nameEnd < nameStart + length && bytes[nameEnd] != 0 { nameEnd += 1 }
                events.append(
                    InotifyEvent(
                        watch: wd,
                        mask: InotifyMask(rawValue: mask),
                        cookie: cookie,
                        name: Array(bytes[nameStart..<nameEnd])
                    )
                )
                offset = nameStart + length
            }
        }

        /// `fs.inotify.max_user_watches`, if readable.
        public static var maxUserWatches: Int? {
            let fd = open("/proc/sys/fs/inotify/max_user_watches", O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { return nil }
            defer { close(fd) }
            var buffer = [UInt8](repeating: 0, count: 32)
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            guard n > 0 else { return nil }
            return Int(String(decoding: buffer[..<n].filter { $0 >= 0x30 && $0 <= 0x39 }, as: UTF8.self))
        }
    }

    extension SystemError {
        /// inotify's per-user watch limit is exhausted.
        public var isWatchLimit: Bool { errno == ENOSPC && operation == "watch" }
    }
#endif
