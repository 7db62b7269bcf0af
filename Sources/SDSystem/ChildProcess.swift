import CSDPlatform
import Synchronization

#if canImport(Glibc)
    @preconcurrency import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// How a child process ended.
public enum Termination: Sendable, Equatable, CustomStringConvertible {
    case exited(Int32)
    case signalled(Int32)

    /// The exit code, or 128 + the signal (as shells report it).
    public var code: Int32 {
        switch self {
        case .exited(let code): code
        case .signalled(let signal): 128 + signal
        }
    }

    public var description: String {
        switch self {
        case .exited(let code): "exited with \(code)"
        case .signalled(let signal): "killed by signal \(signal)"
        }
    }
}

/// A program started with `posix_spawn`, reaped with `waitpid`.
///
/// Why not Foundation's `Process`: on Linux it launches through a run loop of the calling thread and a manager
/// thread, which is fragile when the caller is a Swift concurrency worker (threads that come and go), and the
/// pipes it makes are inheritable, so a program started at the same moment on another thread can hold a pipe
/// open and a reader waits for that program instead. Here every descriptor sd makes for a child is
/// close-on-exec, the child gets only standard input, output and error, and nothing else is involved.
public final class ChildProcess: Sendable {
    public let pid: pid_t
    private let ended = Mutex<Termination?>(nil)

    /// What a child's standard input, output or error is.
    public enum Stream: Sendable {
        /// `/dev/null`.
        case null
        /// The parent's own.
        case inherit
        /// This descriptor (the parent keeps its copy and closes it when it wants).
        case descriptor(Int32)
    }

    private init(pid: pid_t) { self.pid = pid }

    /// Starts `path` with `arguments` (not including the program name) and `environment` (the parent's when nil).
    ///
    /// #### Errors
    /// `SystemError` naming the program when it cannot be started (missing, not executable).
    public static func start(
        _ path: String,
        _ arguments: [String],
        environment: [String: String]? = nil,
        standardInput: Stream = .null,
        standardOutput: Stream = .inherit,
        standardError: Stream = .inherit,
        newSession: Bool = false
    ) throws(SystemError) -> ChildProcess {
        #if canImport(Glibc)
            var actions = posix_spawn_file_actions_t()
            var attributes = posix_spawnattr_t()
        #else
            var actions: posix_spawn_file_actions_t?
            var attributes: posix_spawnattr_t?
        #endif
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        for (target, stream) in [(Int32(0), standardInput), (1, standardOutput), (2, standardError)] {
            switch stream {
            case .inherit: break
            case .null:
                posix_spawn_file_actions_addopen(&actions, target, "/dev/null", target == 0 ? O_RDONLY : O_WRONLY, 0)
            case .descriptor(let fd):
                posix_spawn_file_actions_adddup2(&actions, fd, target)
            }
        }
        // Nothing but 0, 1 and 2 reaches the child (descriptors others opened without close-on-exec included).
        _ = csd_spawn_close_from(&actions, &attributes, 3)
        if newSession { _ = csd_spawn_new_session(&attributes) }
        // Each argument's own bytes (`PathText`): a file name that is not UTF-8 reaches the program exactly.
        let argv = ([path] + arguments).map { PathText.withCPath($0) { strdup($0) } }
        defer { argv.forEach { free($0) } }
        let env = (environment ?? currentEnvironment()).map { strdup("\($0.key)=\($0.value)") }
        defer { env.forEach { free($0) } }
        var pid: pid_t = 0
        let status = (argv + [nil]).withUnsafeBufferPointer { argvBuffer in
            (env + [nil]).withUnsafeBufferPointer { envBuffer in
                posix_spawn(
                    &pid,
                    path,
                    &actions,
                    &attributes,
                    UnsafeMutablePointer(mutating: argvBuffer.baseAddress!),
                    UnsafeMutablePointer(mutating: envBuffer.baseAddress!)
                )
            }
        }
        guard status == 0 else { throw SystemError("start", path: path, errno: status) }
        return ChildProcess(pid: pid)
    }

    /// The environment of this process.
    public static func currentEnvironment() -> [String: String] {
        var result: [String: String] = [:]
        var pointer = environ
        while let entry = pointer.pointee {
            let text = String(cString: entry)
            if let equals = text.firstIndex(of: "=") {
                result[String(text[..<equals])] = String(text[text.index(after: equals)...])
            }
            pointer += 1
        }
        return result
    }

    /// How it ended, once it has (reaped here); nil while it runs.
    public var termination: Termination? {
        reap()
    }

    public var isRunning: Bool { termination == nil }

    /// Waits for it to end.
    @discardableResult
    public func wait() -> Termination {
        if let done = termination { return done }
        // Block until it has ended without reaping it (WNOWAIT), so the lock is not held while waiting and the
        // pid cannot be reused before `reap` records how it ended.
        var info = siginfo_t()
        while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) != 0 && Glibc_errno() == EINTR {}
        return reap() ?? .exited(-1)
    }

    /// Waits up to `seconds` for it to end; whether it did.
    public func wait(seconds: Double) -> Bool {
        let deadline = Monotonic.now + seconds
        while isRunning {
            if Monotonic.now >= deadline { return false }
            usleep(2_000)
        }
        return true
    }

    /// Sends `signal` (a no-op once it has been reaped, so a reused pid is never signalled).
    public func send(_ signal: Int32) {
        ended.withLock { done in
            if done == nil { _ = kill(pid, signal) }
        }
    }

    private func reap() -> Termination? {
        // Under the lock, so that one caller reaps and every other sees the result.
        ended.withLock { done -> Termination? in
            if let done { return done }
            var status: Int32 = 0
            while true {
                let result = waitpid(pid, &status, WNOHANG)
                if result == pid { break }
                if result == 0 { return nil }
                if Glibc_errno() == EINTR { continue }
                done = .exited(-1)  // not our child any more (reaped elsewhere): it has ended
                return done
            }
            let low = status & 0x7f
            done = low == 0 ? .exited((status >> 8) & 0xff) : .signalled(low)
            return done
        }
    }

    /// Runs a program to its end with `input` on its standard input; its exit status and output.
    ///
    /// The pipes are close-on-exec and are served together (poll), so a program that writes much before it
    /// reads cannot deadlock with us.
    public static func run(
        _ path: String,
        _ arguments: [String],
        input: [UInt8] = [],
        environment: [String: String]? = nil
    ) throws(SystemError) -> (termination: Termination, out: [UInt8], err: [UInt8]) {
        _ = ignoreBrokenPipes
        let inPipe = try Pipe(), outPipe = try Pipe(), errPipe = try Pipe()
        let child: ChildProcess
        do {
            child = try start(
                path,
                arguments,
                environment: environment,
                standardInput: .descriptor(inPipe.read),
                standardOutput: .descriptor(outPipe.write),
                standardError: .descriptor(errPipe.write)
            )
        } catch {
            [inPipe.read, inPipe.write, outPipe.read, outPipe.write, errPipe.read, errPipe.write].forEach { close($0) }
            throw error
        }
        close(inPipe.read)
        close(outPipe.write)
        close(errPipe.write)
        var inFD = inPipe.write
        _ = fcntl(inFD, F_SETFL, fcntl(inFD, F_GETFL) | O_NONBLOCK)
        var written = 0
        if input.isEmpty {
            close(inFD)
            inFD = -1
        }
        var out: [UInt8] = [], err: [UInt8] = []
        var open = [outPipe.read: true, errPipe.read: true]
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while open.values.contains(true) || inFD >= 0 {
            var fds: [pollfd] = []
            for (fd, isOpen) in open where isOpen { fds.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0)) }
            if inFD >= 0 { fds.append(pollfd(fd: inFD, events: Int16(POLLOUT), revents: 0)) }
            if poll(&fds, nfds_t(fds.count), -1) < 0 {
                if Glibc_errno() == EINTR { continue }
                break
            }
            for p in fds where p.revents != 0 {
                if p.fd == inFD {
                    let n = input[written...].withUnsafeBytes { write(inFD, $0.baseAddress, $0.count) }
                    if n > 0 { written += n }
                    if (n < 0 && Glibc_errno() != EAGAIN) || written == input.count {
                        close(inFD)  // done, or the child closed its end (EPIPE)
                        inFD = -1
                    }
                    continue
                }
                let n = buffer.withUnsafeMutableBytes { read(p.fd, $0.baseAddress, $0.count) }
                if n > 0 {
                    if p.fd == outPipe.read { out += buffer[0..<n] } else { err += buffer[0..<n] }
                } else if n == 0 || Glibc_errno() != EINTR {
                    open[p.fd] = false
                    close(p.fd)
                }
            }
        }
        return (child.wait(), out, err)
    }

    /// A close-on-exec pipe (both descriptors are the caller's to close).
    public static func pipe() throws(SystemError) -> (read: Int32, write: Int32) {
        let made = try Pipe()
        return (made.read, made.write)
    }

    /// A close-on-exec pipe.
    struct Pipe {
        var read: Int32
        var write: Int32
        init() throws(SystemError) {
            var fds: [Int32] = [0, 0]
            guard csd_pipe_cloexec(&fds) == 0 else { throw SystemError.current("pipe", path: nil) }
            read = fds[0]
            write = fds[1]
        }
    }
}

/// Writing to a pipe whose reader has gone must be an EPIPE error, not the SIGPIPE that ends the process.
private let ignoreBrokenPipes: Void = { _ = signal(SIGPIPE, SIG_IGN) }()

/// Seconds on the monotonic clock.
enum Monotonic {
    static var now: Double {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
    }
}
