import CSDPlatform

#if canImport(Glibc)
    @preconcurrency import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Threads of sd's own (walkers, watchers, the daemon's job threads), for work that blocks.
///
/// Why not Foundation's `Thread`: on Linux its block, and everything the block captured, is released only when
/// the thread exits, by a thread-specific-data destructor that runs after libdispatch has already freed the
/// thread's cache of dispatch continuations. If that release drops the last reference to a dispatch queue
/// with queue-specific data (every GRDB connection has one, so: the last reference to a `Library`), disposing
/// of the queue takes a continuation from the freed cache and writes into freed memory. The heap is then
/// corrupt, and a later `malloc` anywhere in the process aborts (`malloc(): unaligned fastbin chunk detected`).
/// Here the body is released when it returns, while the thread is still an ordinary running thread.
public enum Threads {
    /// Starts `body` on a new detached thread named `name` (at most 15 bytes are kept), with a stack of
    /// `stackSize` bytes (the system's default when nil).
    ///
    /// #### Errors
    /// `SystemError` (EAGAIN) when the system cannot make another thread.
    public static func start(
        name: String,
        stackSize: Int? = nil,
        _ body: @escaping @Sendable () -> Void
    ) throws(SystemError) {
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
        if let stackSize { pthread_attr_setstacksize(&attributes, max(stackSize, 64 << 10)) }
        let context = Unmanaged.passRetained(ThreadBody(name: name, body)).toOpaque()
        #if canImport(Glibc)
            var thread = pthread_t()
        #else
            var thread: pthread_t?
        #endif
        let status = pthread_create(&thread, &attributes, threadMain, context)
        guard status == 0 else {
            Unmanaged<ThreadBody>.fromOpaque(context).release()
            throw SystemError("start a thread", path: nil, errno: status)
        }
    }
}

private final class ThreadBody {
    let name: String
    let body: @Sendable () -> Void
    init(name: String, _ body: @escaping @Sendable () -> Void) {
        self.name = name
        self.body = body
    }
}

#if canImport(Glibc)
    private func threadMain(_ context: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
        run(context!)
        return nil
    }
#else
    private func threadMain(_ context: UnsafeMutableRawPointer) -> UnsafeMutableRawPointer? {
        run(context)
        return nil
    }
#endif

/// Runs the body, then releases it (and what it captured) before the thread starts to exit.
private func run(_ context: UnsafeMutableRawPointer) {
    let thread = Unmanaged<ThreadBody>.fromOpaque(context).takeRetainedValue()
    // Linux keeps 15 bytes of a thread's name (and refuses a longer one): cut at a character boundary.
    var name = ""
    for character in thread.name {
        if name.utf8.count + character.utf8.count > 15 { break }
        name.append(character)
    }
    _ = csd_set_thread_name(name)
    thread.body()
    withExtendedLifetime(thread) {}
}
