import Foundation
import NIOCore
import NIOTLS
import SDCore
import Synchronization

/// Who may hold a connection to this device's peer port, and for how long: strangers on the network get a
/// few seconds to finish a TLS handshake, a bounded number of tries per address, and a bounded number of
/// half-open connections in all; a paired device a bounded number of connections. Everything beyond is closed
/// as soon as it is accepted, so a flood costs a descriptor for a moment, never the daemon's descriptors or
/// its local API.
public final class Admission: Sendable {
    public struct Limits: Sendable {
        /// Connections that have not finished the TLS handshake and their hello, in all.
        public var unauthenticated = 64
        /// ... from one address.
        public var unauthenticatedPerAddress = 16
        /// New connections from one address: a bucket of `burst`, refilled at `perSecond`.
        public var burst = 40.0
        public var perSecond = 4.0
        /// Connections of one paired device at once (a follower, a few copies), and of all of them.
        public var perDevice = 4
        public var authenticated = 64
        /// The TLS handshake must be done within this (the hellos then have the endpoint's handshake timeout).
        public var handshakeDeadline: TimeAmount = .seconds(10)
        /// An authenticated connection on which nothing arrives for this long is closed (sync followers ask at
        /// least every 30 s).
        public var idleTimeout: TimeAmount = .minutes(5)
        /// Addresses whose rate is remembered (the oldest are forgotten first).
        public var addressesKept = 4_096

        public init() {}
    }

    public let limits: Limits

    private struct State {
        var unauthenticated = 0
        var pendingByAddress: [String: Int] = [:]
        var buckets: [String: (tokens: Double, at: ContinuousClock.Instant)] = [:]
        var byDevice: [DeviceID: Int] = [:]
        var authenticated = 0
        /// Addresses a paired device connected from (most recent last): they are not held back by strangers
        /// filling the unauthenticated slots.
        var verified: [String] = []
    }

    private let state = Mutex(State())

    public init(limits: Limits = Limits()) { self.limits = limits }

    /// The key limits are counted under: the address, or for IPv6 its /64 (one host may hold a whole /64).
    static func key(_ address: String) -> String {
        guard address.contains(":") else { return address }
        var bytes = [UInt8](repeating: 0, count: 16)
        guard inet_pton(AF_INET6, address, &bytes) == 1 else { return address }
        if bytes[0..<12].elementsEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF]) {
            return bytes[12..<16].map(String.init).joined(separator: ".")  // an IPv4 address, mapped
        }
        return stride(from: 0, to: 8, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }
            .joined(separator: ":") + "::/64"
    }

    /// A new connection from `address`: taken (counted as unauthenticated) or not.
    func admit(_ rawAddress: String) -> Bool {
        let address = Self.key(rawAddress)
        return state.withLock { s in
            let now = ContinuousClock.now
            var bucket = s.buckets[address] ?? (limits.burst, now)
            let elapsed =
                Double((now - bucket.at).components.attoseconds) / 1e18 + Double((now - bucket.at).components.seconds)
            bucket.tokens = min(limits.burst, bucket.tokens + elapsed * limits.perSecond)
            bucket.at = now
            // Strangers filling the slots do not lock out an address a paired device came from before.
            let known = s.verified.contains(address)
            guard bucket.tokens >= 1, known || s.unauthenticated < limits.unauthenticated,
                s.pendingByAddress[address, default: 0] < limits.unauthenticatedPerAddress
            else {
                s.buckets[address] = bucket
                return false
            }
            bucket.tokens -= 1
            if s.buckets[address] == nil && s.buckets.count >= limits.addressesKept {
                // Forget the address that has waited longest (its bucket is full again by now, or nearly).
                if let oldest = s.buckets.min(by: { $0.value.at < $1.value.at })?.key { s.buckets[oldest] = nil }
            }
            s.buckets[address] = bucket
            s.unauthenticated += 1
            s.pendingByAddress[address, default: 0] += 1
            return true
        }
    }

    /// The connection from `address` proved to be `device`: counted as its (false when it has too many).
    func authenticate(_ rawAddress: String, as device: DeviceID) -> Bool {
        let address = Self.key(rawAddress)
        return state.withLock { s in
            s.unauthenticated -= 1
            s.pendingByAddress[address, default: 1] -= 1
            if s.pendingByAddress[address] == 0 { s.pendingByAddress[address] = nil }
            guard s.byDevice[device, default: 0] < limits.perDevice, s.authenticated < limits.authenticated else {
                return false
            }
            s.byDevice[device, default: 0] += 1
            s.authenticated += 1
            s.verified.removeAll { $0 == address }
            s.verified.append(address)
            if s.verified.count > 256 { s.verified.removeFirst() }
            return true
        }
    }

    /// A connection ended (before or after it was authenticated as `device`).
    func ended(_ rawAddress: String, device: DeviceID?) {
        let address = Self.key(rawAddress)
        state.withLock { s in
            if let device {
                s.byDevice[device, default: 1] -= 1
                if s.byDevice[device] == 0 { s.byDevice[device] = nil }
                s.authenticated -= 1
            } else {
                s.unauthenticated -= 1
                s.pendingByAddress[address, default: 1] -= 1
                if s.pendingByAddress[address] == 0 { s.pendingByAddress[address] = nil }
            }
        }
    }
}

/// The handler after TLS on an accepted connection: closes it unless the TLS handshake is done within the
/// deadline (the event loop keeps that time, whatever else the process is doing), and tells the admission
/// when it ends and whose it was.
final class ConnectionGuard: ChannelInboundHandler, Sendable {
    typealias InboundIn = NIOAny
    let admission: Admission
    let address: String

    private enum Phase {
        /// Counted as unauthenticated (also a pairing connection, until it closes).
        case pending
        /// Counted as the device's.
        case device(DeviceID)
        /// Counted out already.
        case out
    }
    private struct State {
        var phase = Phase.pending
        var handshaken = false
        var timer: Scheduled<Void>?
    }
    private let state = Mutex(State())

    init(admission: Admission, address: String) {
        self.admission = admission
        self.address = address
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        let timer = context.eventLoop.scheduleTask(in: admission.limits.handshakeDeadline) { [self] in
            if !state.withLock({ $0.handshaken }) { channel.close(promise: nil) }
        }
        state.withLock { $0.timer = timer }
    }

    /// The hellos were exchanged: the connection belongs to `device` from now (false: it has too many, and
    /// this one must be closed).
    func authenticated(as device: DeviceID) -> Bool {
        state.withLock { s in
            s.handshaken = true
            s.timer?.cancel()
            guard case .pending = s.phase else { return false }
            let ok = admission.authenticate(address, as: device)
            s.phase = ok ? .device(device) : .out
            return ok
        }
    }

    /// A pairing connection is past the guard's deadline once the hellos are exchanged (the pairing has its
    /// own); it stays counted as unauthenticated until it closes.
    func handshaken() {
        state.withLock { s in
            s.handshaken = true
            s.timer?.cancel()
        }
    }

    /// The TLS handshake is done (the key was checked): the deadline is met; the hello has the endpoint's own.
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let tls = event as? TLSUserEvent, case .handshakeCompleted = tls { handshaken() }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        let phase = state.withLock { s -> Phase in
            s.timer?.cancel()
            defer { s.phase = .out }
            return s.phase
        }
        switch phase {
        case .pending: admission.ended(address, device: nil)
        case .device(let device): admission.ended(address, device: device)
        case .out: break
        }
        context.fireChannelInactive()
    }
}

/// Closes a connection this device opened unless the TLS handshake is done within the deadline (a server that
/// accepts and never answers holds nothing for long).
final class HandshakeDeadline: ChannelInboundHandler, Sendable {
    typealias InboundIn = NIOAny
    let deadline: TimeAmount
    private let timer = Mutex<Scheduled<Void>?>(nil)

    init(_ deadline: TimeAmount) { self.deadline = deadline }

    func handlerAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        let scheduled = context.eventLoop.scheduleTask(in: deadline) { channel.close(promise: nil) }
        timer.withLock { $0 = scheduled }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let tls = event as? TLSUserEvent, case .handshakeCompleted = tls { timer.withLock { $0?.cancel() } }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer.withLock { $0?.cancel() }
        context.fireChannelInactive()
    }
}

/// Closes a connection on which nothing was read for the idle timeout (NIO's `IdleStateHandler` says when).
final class IdleCloser: ChannelInboundHandler, Sendable {
    typealias InboundIn = NIOAny

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let idle = event as? IdleStateHandler.IdleStateEvent, idle == .read {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }
}

/// Bytes received from peers and not yet taken by their readers, in this whole process and per device.
/// Above `high` in all, or above `perDevice` for one device, every connection (of that device) holding more
/// than `share` stops reading (TCP then pushes back on its sender) until the total is below `low` (and the
/// device's below `perDeviceLow`); each connection also stops on its own above `Inbox.high` bytes. A flood of
/// frames from a peer whose answers are not read costs at most these bytes, not the frames it sends.
final class ReceiveBudget: Sendable {
    static let shared = ReceiveBudget()

    let high = 128 << 20
    let low = 96 << 20
    let perDevice = 48 << 20
    let perDeviceLow = 32 << 20
    let share = 1 << 20

    private struct State {
        var bytes = 0
        var over = false
        var byDevice: [DeviceID: Int] = [:]
        var overDevices: Set<DeviceID> = []
        var members: [ObjectIdentifier: Inbox] = [:]
    }
    private let state = Mutex(State())

    var bytes: Int { state.withLock { $0.bytes } }
    func isOver(_ device: DeviceID?) -> Bool {
        state.withLock { s in s.over || device.map { s.overDevices.contains($0) } ?? false }
    }

    func join(_ inbox: Inbox) { state.withLock { $0.members[ObjectIdentifier(inbox)] = inbox } }

    func leave(_ inbox: Inbox) { _ = state.withLock { $0.members.removeValue(forKey: ObjectIdentifier(inbox)) } }

    /// Counts bytes already held (in all) as `device`'s too (a connection just authenticated as it).
    func adopt(_ n: Int, device: DeviceID) {
        state.withLock { $0.byDevice[device, default: 0] += n }
    }

    /// Adds (or, negative, takes back) bytes held by a connection of `device` (nil: not known yet); stops or
    /// restarts reading at the thresholds.
    func change(_ n: Int, device: DeviceID?) {
        guard n != 0 else { return }
        let (stop, restart): ([Inbox], [Inbox]) = state.withLock { s in
            s.bytes += n
            var stop: [Inbox] = []
            var restart: [Inbox] = []
            if let device {
                let now = s.byDevice[device, default: 0] + n
                s.byDevice[device] = now <= 0 ? nil : now
                if now > perDevice && s.overDevices.insert(device).inserted {
                    stop += s.members.values.filter { $0.owner == device }
                } else if now < perDeviceLow && s.overDevices.remove(device) != nil && !s.over {
                    restart += s.members.values.filter { $0.owner == device }
                }
            }
            if !s.over && s.bytes > high {
                s.over = true
                stop = Array(s.members.values)
            } else if s.over && s.bytes < low {
                s.over = false
                restart = Array(s.members.values)
            }
            return (stop, restart)
        }
        for inbox in stop where inbox.held >= share { inbox.stopReading() }
        for inbox in restart { inbox.readAgainIfDrained() }
    }
}
