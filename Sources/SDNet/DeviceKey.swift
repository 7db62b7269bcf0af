import Crypto
import CryptoExtras
import Foundation
import SDCore
import SDStore
import SDSystem
import SwiftASN1
import X509

/// This device's Ed25519 identity key: made once, kept in `device.key` (PKCS#8 PEM, mode 0600) beside
/// `device.json` in the config folder. Peers pin its public key when they pair with this device; a device id
/// counts as this device only when presented with this key.
public struct DeviceKey: Sendable {
    public let privateKey: Curve25519.Signing.PrivateKey

    public var publicKey: [UInt8] { Array(privateKey.publicKey.rawRepresentation) }

    public init(_ privateKey: Curve25519.Signing.PrivateKey) { self.privateKey = privateKey }

    /// Loads the key, creating it the first time. Two processes starting at once agree on one key (created with
    /// a no-replace rename; the loser reads the winner's).
    ///
    /// #### Errors
    /// `NetError.identity` when the key file exists but cannot be read, or has lost its 0600 mode (it is never
    /// replaced: peers have pinned it).
    public static func loadOrCreate(configDirectory dir: String) throws(NetError) -> DeviceKey {
        let path = "\(dir)/device.key"
        if let existing = try load(path) { return existing }
        let made = Curve25519.Signing.PrivateKey()
        let pem = Array((made.pemRepresentation + "\n").utf8)
        let temporary = "\(path).new-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { FileSystem.remove(temporary) }
        do {
            try FileSystem.makeDirectories(dir, mode: 0o700)
            try FileSystem.writeNew(pem, to: temporary, mode: 0o600)
            try FileSystem.renameNoReplace(temporary, to: path)
            try FileSystem.syncDirectory(dir)
        } catch {
            if !error.isExists { throw NetError(.identity, "cannot write this device's key '\(path)': \(error)") }
        }
        guard let key = try load(path) else {
            throw NetError(.identity, "'\(path)' vanished while it was being created; run the command again")
        }
        return key
    }

    private static func load(_ path: String) throws(NetError) -> DeviceKey? {
        guard FileSystem.exists(path) else { return nil }
        do {
            let mode = try Directory.stat(Array(path.utf8)).mode
            if mode & 0o077 != 0 {
                throw NetError(
                    .identity,
                    "this device's key '\(path)' is readable by others (mode \(String(mode & 0o777, radix: 8))); run 'chmod 600 \(path)' if nobody else could have read it, else remove it, make a new one and pair again"
                )
            }
            let text = String(decoding: try Data(contentsOf: URL(fileURLWithPath: path)), as: UTF8.self)
            return DeviceKey(try Curve25519.Signing.PrivateKey(pemRepresentation: text))
        } catch let error as NetError {
            throw error
        } catch {
            throw NetError(
                .identity,
                "this device's key '\(path)' cannot be read (\(error)); restore it from a backup, or move it (and device.json) away to make this machine a new device and pair again"
            )
        }
    }

    /// A short, typeable fingerprint of a public key (for people comparing two screens).
    public static func fingerprint(_ publicKey: [UInt8]) -> String {
        let hex = Hex.encode(Array(SHA256.hash(data: publicKey)).prefix(8))
        return stride(from: 0, to: hex.count, by: 4).map { i in
            String(hex.dropFirst(i).prefix(4))
        }.joined(separator: "-")
    }

    /// A self-signed certificate for this key, its common name the device id: what this device presents in
    /// every TLS handshake. Peers check the key in it, never a chain.
    public func certificate(for device: DeviceID) throws(NetError) -> [UInt8] {
        do {
            let key = Certificate.PrivateKey(privateKey)
            let name = try DistinguishedName { CommonName(device.description) }
            let now = Date()
            let certificate = try Certificate(
                version: .v3,
                serialNumber: Certificate.SerialNumber(),
                publicKey: key.publicKey,
                notValidBefore: now.addingTimeInterval(-86_400),
                notValidAfter: now.addingTimeInterval(20 * 365 * 86_400),
                issuer: name,
                subject: name,
                signatureAlgorithm: .ed25519,
                extensions: Certificate.Extensions {},
                issuerPrivateKey: key
            )
            var serializer = DER.Serializer()
            try serializer.serialize(certificate)
            return serializer.serializedBytes
        } catch {
            throw NetError(.identity, "cannot make this device's certificate: \(error)")
        }
    }
}

/// Peer networking errors: each says what happened and, where there is something to do, what.
public struct NetError: Error, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        case identity  // this device's key or peers file
        case refused  // the other side is not paired, or not who it claims
        case pairing  // a pairing code that is wrong, expired or used
        case protocolError  // a malformed, oversized or unexpected message
        case unreachable  // cannot connect
        case closed  // the connection ended
        case timeout
    }

    public let kind: Kind
    public let message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}
