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

/// NIO decoder: bytes to frames, closing on a framing error (the error is fired down the pipeline). The bytes
/// of a frame not yet whole count in `inbox`'s budget (so a peer cannot hold memory by sending slowly).
final class FrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = Frame
    let maximumLength: Int
    let inbox: Inbox?
    /// The bytes of a partial frame counted in the inbox now.
    private var counted = 0

    init(maximumLength: Int, inbox: Inbox? = nil) {
        self.maximumLength = maximumLength
        self.inbox = inbox
    }

    func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        let state = try split(context: context, buffer: &buffer)
        if state == .needMoreData, let inbox {
            let partial = buffer.readableBytes
            inbox.partial(partial - counted)
            counted = partial
        }
        return state
    }

    func decoderRemoved(context: ChannelHandlerContext) {
        inbox?.partial(-counted)
        counted = 0
    }

    private func split(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let header = buffer.getBytes(at: buffer.readerIndex, length: 4) else { return .needMoreData }
        let length = Int(header[0]) << 24 | Int(header[1]) << 16 | Int(header[2]) << 8 | Int(header[3])
        guard length >= 3 else { throw WireError("frame length \(length) is too short") }
        guard length <= maximumLength else {
            throw WireError("frame of \(length) bytes exceeds the limit of \(maximumLength)")
        }
        guard buffer.readableBytes >= 4 + length else { return .needMoreData }
        // The payload copied once, straight from the received bytes.
        let start = buffer.readerIndex
        let version = buffer.getInteger(at: start + 4, as: UInt8.self) ?? 0
        guard version == Frame.version else {
            throw WireError("protocol version \(version) (this sd speaks \(Frame.version)); update sd on both devices")
        }
        let kind = buffer.getInteger(at: start + 5, endianness: .big, as: UInt16.self) ?? 0
        buffer.moveReaderIndex(forwardBy: 7)
        let payload = buffer.readBytes(length: length - 3) ?? []
        context.fireChannelRead(wrapInboundOut(Frame(kind, payload)))
        return .continue
    }

    func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        return .needMoreData
    }
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
