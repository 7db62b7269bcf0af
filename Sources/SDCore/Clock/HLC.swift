/// A hybrid logical clock timestamp: wall-clock milliseconds, a logical counter, and the device that made it.
/// Ordered by (physical, logical, device), a total order that every device computes alike, so "the higher
/// timestamp wins" settles concurrent edits of shared metadata the same way everywhere.
public struct HLCTimestamp: Hashable, Comparable, Codable, Sendable, CustomStringConvertible {
    public var physical: UInt64
    public var logical: UInt32
    public var device: DeviceID

    public init(physical: UInt64, logical: UInt32, device: DeviceID) {
        self.physical = physical
        self.logical = logical
        self.device = device
    }

    public static func < (a: HLCTimestamp, b: HLCTimestamp) -> Bool {
        (a.physical, a.logical) != (b.physical, b.logical)
            ? (a.physical, a.logical) < (b.physical, b.logical)
            : a.device < b.device
    }

    /// Fixed-width hex: its text order is its timestamp order, so it sorts correctly as a database TEXT column.
    public var description: String {
        "\(Self.hex(physical, width: 16))-\(Self.hex(UInt64(logical), width: 8))-\(device)"
    }

    public init?(_ text: String) {
        let parts = text.split(separator: "-", maxSplits: 2)
        guard parts.count == 3, parts[0].count == 16, parts[1].count == 8,
            let physical = UInt64(parts[0], radix: 16), let logical = UInt32(parts[1], radix: 16),
            let device = DeviceID(parts[2])
        else { return nil }
        self.init(physical: physical, logical: logical, device: device)
    }

    private static func hex(_ value: UInt64, width: Int) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }
}

/// A hybrid logical clock (Kulkarni et al.): close to wall-clock time, yet strictly increasing on each device
/// and never behind any timestamp it has received. Pure: the caller passes the wall-clock time in.
public struct HLC: Sendable {
    public let device: DeviceID
    /// The last timestamp issued or merged.
    public private(set) var last: HLCTimestamp
    /// Remote timestamps further ahead of our wall clock than this are refused (a peer's broken or hostile
    /// clock must not drag ours into the future).
    public var maxDriftMilliseconds: UInt64

    public init(device: DeviceID, last: HLCTimestamp? = nil, maxDriftMilliseconds: UInt64 = 5 * 60 * 1000) {
        self.device = device
        self.last = last ?? HLCTimestamp(physical: 0, logical: 0, device: device)
        self.maxDriftMilliseconds = maxDriftMilliseconds
    }

    /// A new timestamp for a local event at wall-clock time `physical` (ms since 1970), greater than every
    /// timestamp this clock has issued or received, even if the wall clock stepped back.
    public mutating func now(physical: UInt64) -> HLCTimestamp {
        if physical > last.physical {
            last = HLCTimestamp(physical: physical, logical: 0, device: device)
        } else {
            advanceLogical(from: last.logical)
        }
        return last
    }

    /// Merges a timestamp received from a peer and returns the timestamp of the receive event, greater than
    /// both `remote` and everything issued before.
    ///
    /// #### Errors
    /// `HLCError.remoteTooFarAhead` when `remote` is more than `maxDriftMilliseconds` ahead of `physical`; the
    /// clock is left unchanged.
    public mutating func receive(_ remote: HLCTimestamp, physical: UInt64) throws(HLCError) -> HLCTimestamp {
        if remote.physical > physical && remote.physical - physical > maxDriftMilliseconds {
            throw HLCError.remoteTooFarAhead(remote: remote, aheadBy: remote.physical - physical)
        }
        let top = max(last.physical, remote.physical, physical)
        if top == last.physical && top == remote.physical {
            last.physical = top
            advanceLogical(from: max(last.logical, remote.logical))
        } else if top == last.physical {
            advanceLogical(from: last.logical)
        } else if top == remote.physical {
            last.physical = top
            advanceLogical(from: remote.logical)
        } else {
            last = HLCTimestamp(physical: top, logical: 0, device: device)
        }
        return last
    }

    /// Sets the logical counter one past `logical`; if the counter is exhausted, moves one millisecond on.
    private mutating func advanceLogical(from logical: UInt32) {
        if logical == .max {
            last = HLCTimestamp(physical: last.physical + 1, logical: 0, device: device)
        } else {
            last = HLCTimestamp(physical: last.physical, logical: logical + 1, device: device)
        }
    }
}

public enum HLCError: Error, Sendable, CustomStringConvertible {
    case remoteTooFarAhead(remote: HLCTimestamp, aheadBy: UInt64)

    public var description: String {
        switch self {
        case .remoteTooFarAhead(let remote, let ahead):
            "a peer's clock (\(remote.device)) is \(ahead / 1000) s ahead of ours; refusing its timestamp until the clocks agree"
        }
    }
}
