import Foundation
import NIOCore
import NIOPosix
import SDCore

/// What a device announces on its local network: its id and the port it accepts peers on, nothing else.
/// Hearing one proves nothing: the address is only a place to try, and the TLS handshake with the pinned key
/// decides whether the device there is the one paired.
public struct Announcement: Sendable, Equatable {
    public var device: DeviceID
    public var port: UInt16

    public init(device: DeviceID, port: UInt16) {
        self.device = device
        self.port = port
    }

    /// "SDA" and a version byte, the device id's 16 bytes, the port (big-endian): 22 bytes.
    static let magic: [UInt8] = [0x53, 0x44, 0x41, 0x01]
    static let length = 22

    public var bytes: [UInt8] {
        let u = device.uuid.uuid
        return Self.magic + [
            u.0, u.1, u.2, u.3, u.4, u.5, u.6, u.7, u.8, u.9, u.10, u.11, u.12, u.13, u.14, u.15,
        ] + [UInt8(port >> 8), UInt8(port & 0xFF)]
    }

    /// Decodes a datagram; nil for anything that is not exactly an announcement (other traffic on the group,
    /// truncated or padded packets, port 0).
    public init?(bytes: [UInt8]) {
        guard bytes.count == Self.length, Array(bytes[0..<4]) == Self.magic else { return nil }
        let b = Array(bytes[4..<20])
        let uuid = UUID(
            uuid: (b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15])
        )
        let port = UInt16(bytes[20]) << 8 | UInt16(bytes[21])
        guard port != 0 else { return nil }
        self.init(device: DeviceID(uuid), port: port)
    }
}

/// LAN discovery: announces this device on a UDP multicast group every `interval`, and reports every other
/// device's announcement with the address it came from.
public final class LANDiscovery: Sendable {
    public static let defaultGroup = "239.255.73.73"
    public static let defaultPort = 7374

    let channel: any Channel
    let sender: Task<Void, Never>

    init(channel: any Channel, sender: Task<Void, Never>) {
        self.channel = channel
        self.sender = sender
    }

    /// Joins `group` on UDP `port` (shared with other sd processes on this machine) and starts announcing
    /// `device` with `listenPort`. `heard` is called on a network thread for each other device's announcement,
    /// with the sender's IP address.
    ///
    /// #### Errors
    /// `NetError.unreachable` when the socket cannot be bound or the group joined (no multicast route: the
    /// caller goes on without discovery).
    public static func start(
        device: DeviceID,
        listenPort: Int,
        group: String = defaultGroup,
        port: Int = defaultPort,
        every interval: Duration = .seconds(5),
        heard: @escaping @Sendable (Announcement, String) -> Void
    ) async throws -> LANDiscovery {
        let groupAddress: SocketAddress
        let channel: any Channel
        do {
            groupAddress = try SocketAddress(ipAddress: group, port: port)
            channel = try await DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .channelOption(.socketOption(.so_reuseaddr), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(Listener(own: device, heard: heard))
                    }
                }
                .bind(host: "0.0.0.0", port: port).get()
            guard let multicast = channel as? any MulticastChannel else {
                throw NetError(.unreachable, "this platform's UDP sockets cannot join multicast groups")
            }
            try await multicast.joinGroup(groupAddress).get()
        } catch let error as NetError {
            throw error
        } catch {
            throw NetError(.unreachable, "LAN discovery on \(group):\(port) is not possible here: \(error)")
        }
        let announcement = Announcement(device: device, port: UInt16(clamping: listenPort)).bytes
        let sender = Task {
            while !Task.isCancelled {
                var buffer = channel.allocator.buffer(capacity: announcement.count)
                buffer.writeBytes(announcement)
                try? await channel.writeAndFlush(AddressedEnvelope(remoteAddress: groupAddress, data: buffer)).get()
                try? await Task.sleep(for: interval)
            }
        }
        return LANDiscovery(channel: channel, sender: sender)
    }

    public func close() async {
        sender.cancel()
        try? await channel.close()
    }

    final class Listener: ChannelInboundHandler, Sendable {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        let own: DeviceID
        let heard: @Sendable (Announcement, String) -> Void

        init(own: DeviceID, heard: @escaping @Sendable (Announcement, String) -> Void) {
            self.own = own
            self.heard = heard
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let envelope = Self.unwrapInboundIn(data)
            var buffer = envelope.data
            guard buffer.readableBytes == Announcement.length,
                let bytes = buffer.readBytes(length: buffer.readableBytes),
                let announcement = Announcement(bytes: bytes), announcement.device != own,
                let host = envelope.remoteAddress.ipAddress
            else { return }
            heard(announcement, host)
        }
    }
}
