import NIOCore

/// One message between peers: a kind and its payload (encoded with `WireWriter`).
///
/// On the wire: a 4-byte big-endian length of what follows, the protocol version (1 byte), the kind (2 bytes,
/// big-endian), the payload. The transport (TLS over TCP now; QUIC could replace it) only moves frames;
/// what they mean is up to the layer that owns the kind: SDNet's own (below 100: hello, pairing, refusals,
/// pings) and the sync protocol's (100 and up).
public struct Frame: Sendable, Equatable {
    public var kind: UInt16
    public var payload: [UInt8]

    public init(_ kind: UInt16, _ payload: [UInt8] = []) {
        self.kind = kind
        self.payload = payload
    }

    /// The only protocol version so far; a peer speaking another is refused with a clear message.
    public static let version: UInt8 = 1
    /// The largest frame accepted (length field), by default; a larger one closes the connection.
    public static let defaultMaximumLength = 8 << 20

    public enum Kind {
        public static let hello: UInt16 = 1
        public static let pairProof: UInt16 = 2
        public static let refusal: UInt16 = 3
        public static let ping: UInt16 = 4
        public static let pong: UInt16 = 5
        /// Kinds from here on belong to the layers above (sync).
        public static let firstApplication: UInt16 = 100
    }

    /// The bytes of this frame as sent.
    public var encoded: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(7 + payload.count)
        let length = UInt32(3 + payload.count)
        out += [UInt8(length >> 24), UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF)]
        out.append(Self.version)
        out += [UInt8(kind >> 8), UInt8(kind & 0xFF)]
        out += payload
        return out
    }

    /// Splits whole frames off the front of `bytes`: the frames, and how many bytes they took. A partial frame
    /// at the end is left for more bytes.
    ///
    /// #### Errors
    /// `WireError` for a length over `maximumLength` or under 3, or another protocol version: the connection
    /// cannot continue (its framing is lost or the peer speaks something else).
    public static func split(_ bytes: [UInt8], maximumLength: Int = defaultMaximumLength) throws(WireError) -> (
        frames: [Frame], consumed: Int
    ) {
        var frames: [Frame] = []
        var at = 0
        while bytes.count - at >= 4 {
            let length =
                Int(bytes[at]) << 24 | Int(bytes[at + 1]) << 16 | Int(bytes[at + 2]) << 8 | Int(bytes[at + 3])
            guard length >= 3 else { throw WireError("frame length \(length) is too short") }
            guard length <= maximumLength else {
                throw WireError("frame of \(length) bytes exceeds the limit of \(maximumLength)")
            }
            guard bytes.count - at - 4 >= length else { break }
            let version = bytes[at + 4]
            guard version == Self.version else {
                throw WireError(
                    "protocol version \(version) (this sd speaks \(Self.version)); update sd on both devices"
                )
            }
            let kind = UInt16(bytes[at + 5]) << 8 | UInt16(bytes[at + 6])
            frames.append(Frame(kind, Array(bytes[(at + 7)..<(at + 4 + length)])))
            at += 4 + length
        }
        return (frames, at)
    }
}

/// NIO inbound handler: bytes to frames, closing on a framing error (the error is fired down the pipeline).
/// A frame's payload is allocated once, at its exact size, when its header arrives, and filled as its bytes
/// come: no growing buffer. Those bytes count in `inbox`'s budget from that moment (so a peer cannot hold
/// memory by announcing big frames and sending them slowly), and while the other side is not known yet, only
/// small frames are taken (`Inbox.frameLimit`).
final class FrameDecoder: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = Frame
    let maximumLength: Int
    let inbox: Inbox?
    /// The 7 bytes of a header being read (length, version, kind).
    private var header: [UInt8] = []
    /// The frame being filled: its kind, payload and how much of it arrived.
    private var kind: UInt16 = 0
    private var payload: [UInt8]?
    private var filled = 0
    /// Bytes counted in the inbox for the frame being filled.
    private var counted = 0
    private var failed = false

    init(maximumLength: Int, inbox: Inbox? = nil) {
        self.maximumLength = maximumLength
        self.inbox = inbox
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !failed else { return }
        var buffer = unwrapInboundIn(data)
        do {
            while buffer.readableBytes > 0 {
                if payload == nil {
                    let want = 7 - header.count
                    header += buffer.readBytes(length: min(want, buffer.readableBytes)) ?? []
                    if header.count == 7 { try begin(context) }
                } else {
                    let n = min(buffer.readableBytes, payload!.count - filled)
                    payload!.withUnsafeMutableBytes { target in
                        _ = buffer.readWithUnsafeReadableBytes { source in
                            target.baseAddress!.advanced(by: filled).copyMemory(from: source.baseAddress!, byteCount: n)
                            return n
                        }
                    }
                    filled += n
                }
                if let whole = payload, filled == whole.count { finishFrame(context) }
            }
        } catch {
            failed = true
            release()
            context.fireErrorCaught(error)
        }
    }

    /// A header is in: check it, and allocate the payload at its size.
    private func begin(_ context: ChannelHandlerContext) throws {
        let length = Int(header[0]) << 24 | Int(header[1]) << 16 | Int(header[2]) << 8 | Int(header[3])
        guard length >= 3 else { throw WireError("frame length \(length) is too short") }
        // Until the other side is known, only small frames (hellos, proofs, refusals) are taken.
        let limit = min(maximumLength, inbox?.frameLimit ?? maximumLength)
        guard length <= limit else { throw WireError("frame of \(length) bytes exceeds the limit of \(limit)") }
        guard header[4] == Frame.version else {
            throw WireError(
                "protocol version \(header[4]) (this sd speaks \(Frame.version)); update sd on both devices"
            )
        }
        kind = UInt16(header[5]) << 8 | UInt16(header[6])
        // Not zeroed: every byte is written before the frame is handed on (pages are taken as they fill).
        payload = [UInt8](unsafeUninitializedCapacity: length - 3) { _, count in count = length - 3 }
        filled = 0
        counted = 7 + length - 3
        inbox?.partial(counted)
    }

    private func finishFrame(_ context: ChannelHandlerContext) {
        let frame = Frame(kind, payload ?? [])
        release()
        context.fireChannelRead(wrapInboundOut(frame))
    }

    /// The frame being filled no longer counts here (taken, or dropped).
    private func release() {
        inbox?.partial(-counted)
        counted = 0
        payload = nil
        header = []
        filled = 0
    }

    func channelInactive(context: ChannelHandlerContext) {
        release()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) { release() }
}

/// NIO encoder: frames to bytes.
final class FrameEncoder: MessageToByteEncoder {
    typealias OutboundIn = Frame

    func encode(data: Frame, out: inout ByteBuffer) throws {
        // Written in place (no copy of the payload but the one into the buffer).
        out.reserveCapacity(out.writerIndex + 7 + data.payload.count)
        out.writeInteger(UInt32(3 + data.payload.count), endianness: .big)
        out.writeInteger(Frame.version)
        out.writeInteger(data.kind, endianness: .big)
        out.writeBytes(data.payload)
    }
}
