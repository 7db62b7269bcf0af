import NIOCore
import SDCore
import Synchronization

/// An authenticated connection to a paired device: frames in both directions. The transport under it (TLS
/// 1.3 over TCP) is not visible here, so another (QUIC) could carry the same frames.
public final class PeerLink: Sendable {
    /// The device at the other end, as paired (its key checked in the TLS handshake, its id in the hello).
    public let peer: PairedPeer
    /// Its hello (name, purpose, listening port).
    public let hello: Hello
    /// `HOST:PORT` it was reached at (for an accepted connection: its address and its announced port).
    public let address: String
    let channel: any Channel
    let inbox: Inbox
    private let sent = Mutex(0)

    /// Bytes of frames received and sent on this connection (the TLS records around them add about 0.2%).
    public var bytesReceived: Int { inbox.bytes }
    public var bytesSent: Int { sent.withLock { $0 } }

    init(peer: PairedPeer, hello: Hello, address: String, channel: any Channel, inbox: Inbox) {
        self.peer = peer
        self.hello = hello
        self.address = address
        self.channel = channel
        self.inbox = inbox
    }

    /// Sends one frame (it is written when this returns).
    ///
    /// #### Errors
    /// `NetError.closed` when the connection has ended.
    public func send(_ frame: Frame) async throws(NetError) {
        sent.withLock { $0 += 7 + frame.payload.count }
        try await Self.write(frame, on: channel)
    }

    /// Tells the other side why, then closes, without waiting for it to read (a connection that never finished
    /// its TLS handshake would hold the write forever); closed within 2 s whatever happens.
    static func refuse(_ reason: String, on channel: any Channel) async {
        channel.eventLoop.scheduleTask(in: .seconds(2)) { channel.close(promise: nil) }
        channel.writeAndFlush(Refusal(reason).frame).whenComplete { _ in channel.close(promise: nil) }
    }

    static func write(_ frame: Frame, on channel: any Channel) async throws(NetError) {
        do {
            try await channel.writeAndFlush(frame).get()
        } catch {
            throw InboxHandler.describe(error)
        }
    }

    /// The next frame, or nil when the other side closed the connection in order. A refusal from the other
    /// side is thrown (`NetError.refused` with its reason).
    ///
    /// #### Errors
    /// `NetError.timeout` when nothing came within `timeout` (the connection stays open);
    /// `NetError.protocolError` for a malformed or oversized frame; `.refused`; `.closed` when it broke.
    public func receive(timeout: Duration? = nil) async throws(NetError) -> Frame? {
        try await inbox.next(timeout: timeout, channel: channel)
    }

    /// Closes the connection, first telling the other side why when `reason` is given.
    public func close(refusing reason: String? = nil) async {
        if let reason { try? await send(Refusal(reason).frame) }
        try? await channel.close()
    }

    public var isActive: Bool { channel.isActive }
}

/// Frames received on one connection, waiting for their single reader. Reading stops (TCP pushes back on the
/// sender) while the bytes held (frames waiting, and the part of the next one received) are over `high`, or
/// while the whole process holds more than its `ReceiveBudget`, and starts again below `low`: a peer that sends
/// and never reads the answers costs a bounded number of bytes, not what it sends.
final class Inbox: Sendable {
    private struct State {
        var frames: [Frame] = []
        var head = 0
        var waiter: CheckedContinuation<Frame?, any Error>?
        var end: NetError?
        var ended = false
        var paused = false
        /// Bytes of the frames waiting, plus those of a frame being received.
        var held = 0
        var channel: (any Channel)?
        /// The device at the other end, once known (its connections share a budget).
        var owner: DeviceID?
        /// The largest frame taken now: small until the hellos are done (a hello, a proof, a refusal), a whole
        /// frame's limit once the other side is known.
        var frameLimit = Inbox.handshakeFrameLimit
        /// Each wait's number, and the last one whose time ran out (a timer may fire before the wait starts).
        var token: UInt64 = 0
        var expired: UInt64 = 0
        var count: Int { frames.count - head }
    }

    private let state = Mutex(State())
    private let received = Mutex(0)
    let budget: ReceiveBudget
    var bytes: Int { received.withLock { $0 } }
    /// At most this many bytes held per connection (32 MiB); reading starts again below `low`.
    static let high = 32 << 20
    static let low = 16 << 20

    init(budget: ReceiveBudget = .shared) { self.budget = budget }

    /// Bytes held now.
    var held: Int { state.withLock { $0.held } }

    /// The device at the other end, once the hellos said it.
    var owner: DeviceID? { state.withLock { $0.owner } }

    /// Frames before the other side is known: hellos, pairing proofs and refusals, all small.
    static let handshakeFrameLimit = 64 << 10

    /// The largest frame taken now.
    var frameLimit: Int { state.withLock { $0.frameLimit } }

    /// The connection proved to be `device`'s: what it holds counts in that device's budget from now.
    func belongs(to device: DeviceID) {
        let held = state.withLock { s -> Int in
            s.owner = device
            s.frameLimit = Frame.defaultMaximumLength
            return s.held
        }
        budget.adopt(held, device: device)
    }

    /// The connection it reads from (set once the pipeline is made): stopped and restarted here.
    func attach(_ channel: any Channel) {
        state.withLock { $0.channel = channel }
        budget.join(self)
    }

    /// Adds a frame; whether the reader has fallen behind (the caller stops reading from the socket).
    func push(_ frame: Frame) -> Bool {
        let size = 7 + frame.payload.count
        received.withLock { $0 += size }
        // The owner is read with `held` (in one lock): what `belongs` adopts and what is counted here agree.
        let (waiter, queued, pause, owner): (CheckedContinuation<Frame?, any Error>?, Bool, Bool, DeviceID?) =
            state.withLock { s in
                if s.ended { return (nil, false, false, nil) }
                if let waiter = s.waiter {
                    s.waiter = nil
                    return (waiter, false, false, nil)
                }
                s.frames.append(frame)
                s.held += size
                if (s.held > Self.high || (budget.isOver(s.owner) && s.held >= budget.share)) && !s.paused {
                    s.paused = true
                    return (nil, true, true, s.owner)
                }
                return (nil, true, false, s.owner)
            }
        if queued { budget.change(size, device: owner) }
        waiter?.resume(returning: frame)
        return pause
    }

    /// Bytes of a frame being received changed by `delta` (the decoder's count): held too.
    func partial(_ delta: Int) {
        guard delta != 0 else { return }
        let (stop, counted, owner) = state.withLock { s -> (Bool, Bool, DeviceID?) in
            guard !s.ended else { return (false, false, nil) }
            s.held += delta
            let over = s.held > Self.high || (budget.isOver(s.owner) && s.held >= budget.share)
            return (delta > 0 && over && !s.paused, true, s.owner)
        }
        if counted { budget.change(delta, device: owner) }
        if stop { stopReading() }
    }

    /// Stops reading from the socket (over this connection's or the process's budget).
    func stopReading() {
        let channel = state.withLock { s -> (any Channel)? in
            guard !s.paused, !s.ended else { return nil }
            s.paused = true
            return s.channel
        }
        channel?.setOption(ChannelOptions.autoRead, value: false).whenComplete { _ in }
    }

    /// Reads again once this connection holds little and the process is under its budget.
    func readAgainIfDrained() {
        let channel = state.withLock { s -> (any Channel)? in
            guard s.paused, !s.ended, s.held < Self.low, !budget.isOver(s.owner) else { return nil }
            s.paused = false
            return s.channel
        }
        channel?.setOption(ChannelOptions.autoRead, value: true).whenComplete { _ in }
    }

    /// Ends the stream: in order (nil) or with an error. Frames already received are still read first.
    func finish(_ error: NetError?) {
        let waiter: CheckedContinuation<Frame?, any Error>? = state.withLock { s in
            guard !s.ended else { return nil }
            s.ended = true
            s.end = error
            let w = s.waiter
            s.waiter = nil
            return w
        }
        // What it held no longer counts (frames not read yet are still there for the reader; they go with it).
        let (held, owner) = state.withLock { s -> (Int, DeviceID?) in
            defer {
                s.held = 0
                s.channel = nil
            }
            return (s.held, s.owner)
        }
        budget.change(-held, device: owner)
        budget.leave(self)
        if let waiter {
            if let error { waiter.resume(throwing: error) } else { waiter.resume(returning: nil) }
        }
    }

    /// The next frame. A timeout ends only this wait (the connection stays open).
    func next(timeout: Duration?, channel: any Channel) async throws(NetError) -> Frame? {
        var timer: Scheduled<Void>?
        let token = state.withLock { s -> UInt64 in
            s.token += 1
            return s.token
        }
        if let timeout {
            let nanoseconds =
                timeout.components.seconds * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000
            timer = channel.eventLoop.scheduleTask(in: .nanoseconds(nanoseconds)) { [self] in
                let waiter = state.withLock { s -> CheckedContinuation<Frame?, any Error>? in
                    guard s.token == token else { return nil }
                    s.expired = token
                    let w = s.waiter
                    s.waiter = nil
                    return w
                }
                waiter?.resume(throwing: NetError(.timeout, "the other device did not answer within \(timeout)"))
            }
        }
        defer { timer?.cancel() }
        let frame: Frame?
        do {
            frame = try await withCheckedThrowingContinuation {
                (continuation: CheckedContinuation<Frame?, any Error>) in
                enum Now {
                    case frame(Frame, counted: Bool, owner: DeviceID?, resume: Bool)
                    case end(NetError?)
                    case wait
                }
                let now: Now = state.withLock { s in
                    if s.count > 0 {
                        let frame = s.frames[s.head]
                        s.head += 1
                        if s.head > 1_024 && s.head * 2 > s.frames.count {
                            s.frames.removeFirst(s.head)
                            s.head = 0
                        }
                        // Counted out here while the inbox lives; once it ended, `finish` counted it out.
                        let counted = !s.ended
                        if counted { s.held -= 7 + frame.payload.count }
                        return .frame(frame, counted: counted, owner: s.owner, resume: s.paused && !s.ended)
                    }
                    if s.ended { return .end(s.end) }
                    if s.expired == token { return .end(NetError(.timeout, "the other device did not answer in time")) }
                    s.waiter = continuation
                    return .wait
                }
                switch now {
                case .frame(let frame, let counted, let owner, let resume):
                    if counted { budget.change(-(7 + frame.payload.count), device: owner) }
                    if resume { readAgainIfDrained() }
                    continuation.resume(returning: frame)
                case .end(let error):
                    if let error { continuation.resume(throwing: error) } else { continuation.resume(returning: nil) }
                case .wait: break
                }
            }
        } catch let error as NetError {
            throw error
        } catch {
            throw NetError(.closed, "the connection broke: \(error)")
        }
        if let frame, frame.kind == Frame.Kind.refusal {
            let reason = (try? Refusal(frame).reason) ?? "no reason given"
            throw NetError(.refused, "the other device refused: \(reason)")
        }
        return frame
    }
}

/// The end of a connection's pipeline: frames into the inbox; errors and the end of the connection too.
final class InboxHandler: ChannelInboundHandler {
    typealias InboundIn = Frame
    let inbox: Inbox

    init(inbox: Inbox) { self.inbox = inbox }

    func handlerAdded(context: ChannelHandlerContext) { inbox.attach(context.channel) }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if inbox.push(unwrapInboundIn(data)) {
            context.channel.setOption(ChannelOptions.autoRead, value: false).whenComplete { _ in }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        inbox.finish(Self.describe(error))
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        inbox.finish(nil)
        context.fireChannelInactive()
    }

    static func describe(_ error: any Error) -> NetError {
        if let error = error as? NetError { return error }
        if let error = error as? WireError { return NetError(.protocolError, error.description) }
        if let error = error as? ByteToMessageDecoderError, case .dataReceivedInErrorState(let inner, _) = error {
            return describe(inner)
        }
        let text = "\(error)"
        if text.contains("handshake") || text.contains("CERTIFICATE") || text.contains("certificate") {
            return NetError(
                .refused,
                "the TLS handshake failed (\(text)): the other device does not know this one (pair them first) or is not who it claimed"
            )
        }
        return NetError(.closed, "the connection broke: \(text)")
    }
}
