import Crypto
import Foundation
import SDCore

/// The first message each side sends after the TLS handshake: who it is and why it connected.
public struct Hello: Sendable, Equatable {
    public enum Purpose: UInt8, Sendable {
        /// A paired device, for sync and file transfer.
        case connect = 0
        /// A device holding a pairing code.
        case pair = 1
    }

    public var device: DeviceID
    public var name: String
    public var purpose: Purpose
    /// 32 random bytes: both sides' nonces go into the pairing proofs, so a proof is good for one connection.
    public var nonce: [UInt8]
    /// The port this device accepts peers on (0: none), so that the other side can note where to find it.
    public var listenPort: UInt16

    public init(device: DeviceID, name: String, purpose: Purpose, nonce: [UInt8], listenPort: UInt16) {
        self.device = device
        self.name = name
        self.purpose = purpose
        self.nonce = nonce
        self.listenPort = listenPort
    }

    public var frame: Frame {
        var w = WireWriter()
        w.text(device.description)
        w.text(name)
        w.byte(purpose.rawValue)
        w.raw(nonce)
        w.varint(UInt64(listenPort))
        return Frame(Frame.Kind.hello, w.bytes)
    }

    public init(_ frame: Frame) throws(WireError) {
        guard frame.kind == Frame.Kind.hello else { throw WireError("expected a hello, got kind \(frame.kind)") }
        var r = WireReader(frame.payload)
        guard let device = DeviceID(try r.text(limit: 64)) else { throw WireError("hello: bad device id") }
        self.device = device
        name = try r.text(limit: 256)
        guard let purpose = Purpose(rawValue: try r.byte()) else { throw WireError("hello: unknown purpose") }
        self.purpose = purpose
        nonce = try r.raw(32)
        let port = try r.varint()
        guard port <= UInt64(UInt16.max) else { throw WireError("hello: port \(port)") }
        listenPort = UInt16(port)
        try r.finish()
    }
}

/// Why one side ends a connection: sent before closing, so the other side can say what happened.
public struct Refusal: Sendable, Equatable {
    public var reason: String

    public init(_ reason: String) { self.reason = reason }

    public var frame: Frame {
        var w = WireWriter()
        w.text(reason)
        return Frame(Frame.Kind.refusal, w.bytes)
    }

    public init(_ frame: Frame) throws(WireError) {
        var r = WireReader(frame.payload)
        reason = try r.text(limit: 4_096)
        try r.finish()
    }
}

/// A pairing code: where the hosting device listens and a one-time secret of 80 bits, written
/// `HOST:PORT/XXXX-XXXX-XXXX-XXXX` in Crockford's base 32 (no I, L, O or U; read case-insensitively, with
/// I and L taken as 1 and O as 0, so that it survives being read aloud and typed).
public struct PairingCode: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: UInt16
    public var secret: [UInt8]

    static let alphabet = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ")
    public static let secretBytes = 10

    public init(host: String, port: UInt16, secret: [UInt8]) {
        self.host = host
        self.port = port
        self.secret = secret
    }

    public static func make(host: String, port: UInt16) -> PairingCode {
        var rng = SystemRandomNumberGenerator()
        return PairingCode(host: host, port: port, secret: (0..<secretBytes).map { _ in rng.next() })
    }

    /// The secret's 16 characters, in groups of four.
    public var secretText: String {
        var bits = 0
        var value = 0
        var characters: [Character] = []
        for byte in secret {
            value = value << 8 | Int(byte)
            bits += 8
            while bits >= 5 {
                characters.append(Self.alphabet[(value >> (bits - 5)) & 31])
                bits -= 5
            }
        }
        return stride(from: 0, to: characters.count, by: 4).map {
            String(characters[$0..<min($0 + 4, characters.count)])
        }
        .joined(separator: "-")
    }

    public var description: String {
        let shownHost = host.contains(":") ? "[\(host)]" : host
        return "\(shownHost):\(port)/\(secretText)"
    }

    /// Reads a code as `description` writes it.
    ///
    /// #### Errors
    /// `NetError.pairing` saying what is wrong with it.
    public init(parsing text: String) throws(NetError) {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard let slash = trimmed.lastIndex(of: "/") else {
            throw NetError(.pairing, "a pairing code looks like HOST:PORT/XXXX-XXXX-XXXX-XXXX; '\(text)' has no '/'")
        }
        let address = String(trimmed[..<slash])
        var secretPart = String(trimmed[trimmed.index(after: slash)...]).uppercased()
        secretPart = secretPart.replacingOccurrences(of: "-", with: "").replacingOccurrences(of: " ", with: "")
        guard let colon = address.lastIndex(of: ":"), let port = UInt16(address[address.index(after: colon)...]),
            port > 0
        else { throw NetError(.pairing, "the pairing code's address '\(address)' is not HOST:PORT") }
        var host = String(address[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { throw NetError(.pairing, "the pairing code has no host") }
        var value = 0
        var bits = 0
        var bytes: [UInt8] = []
        for character in secretPart {
            let c: Character =
                switch character {
                case "I", "L": "1"
                case "O": "0"
                default: character
                }
            guard let digit = Self.alphabet.firstIndex(of: c) else {
                throw NetError(.pairing, "'\(character)' cannot be in a pairing code; check it for typos")
            }
            value = (value << 5 | digit) & 0xFFFF
            bits += 5
            if bits >= 8 {
                bytes.append(UInt8((value >> (bits - 8)) & 0xFF))
                bits -= 8
            }
        }
        guard secretPart.count == 16, bytes.count == Self.secretBytes else {
            throw NetError(
                .pairing,
                "the pairing code's secret has \(secretPart.count) characters, not 16; check it for typos"
            )
        }
        self.init(host: host, port: port, secret: bytes)
    }

    /// The proof that one side knows the secret, bound to this connection: both nonces and both public keys
    /// as the TLS handshake authenticated them, so a proof cannot be replayed on another connection or relayed
    /// by a device in the middle (which would present a key of its own).
    static func proof(
        secret: [UInt8],
        role: String,
        hostNonce: [UInt8],
        joinerNonce: [UInt8],
        hostKey: [UInt8],
        joinerKey: [UInt8],
        host: DeviceID,
        joiner: DeviceID
    ) -> [UInt8] {
        var message = Array("sd-pair-v1 \(role)\n".utf8)
        for part in [
            hostNonce, joinerNonce, hostKey, joinerKey, Array(host.description.utf8), Array(joiner.description.utf8),
        ] {
            message += [UInt8(part.count)] + part
        }
        return Array(HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: secret)))
    }
}
