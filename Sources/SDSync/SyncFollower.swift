import Foundation
import SDCore
import SDNet
import SDStore

/// Answers a peer's sync requests from this library: its own rows and its shared change log.
public struct SyncServer: Sendable {
    public let library: Library
    /// Where folders that received files are noted (nil: nobody brings the index up to date for them).
    let written: WrittenFolders?
    /// What the asking device may do here (read now: they may change while it is connected).
    let rights: @Sendable () -> PeerRights
    let files: PeerFileServer
    let receiver: PeerFileReceiver

    /// A server for a device with these rights (a new pairing's by default).
    public init(library: Library, rights: PeerRights = .defaults) {
        self.init(library: library, written: nil, rights: { rights }, peer: nil)
    }

    init(library: Library, written: WrittenFolders?, rights: @escaping @Sendable () -> PeerRights, peer: DeviceID?) {
        self.library = library
        self.written = written
        self.rights = rights
        files = PeerFileServer(library: library, rights: rights)
        receiver = PeerFileReceiver(library: library, written: written, rights: rights, sender: peer)
    }

    /// The answer to a request, or nil for a message that is not a request.
    public func answer(_ message: SyncMessage) throws -> SyncMessage? {
        switch message {
        case .ownedRequest, .sharedRequest, .registersRequest:
            guard rights().allows(.sync) else {
                throw SyncRefusal("\(library.device.name) does not sync its index with this device")
            }
        default:
            break
        }
        switch message {
        case .ownedRequest(let id, let cursor, let limit):
            return .owned(
                id: id,
                start: cursor,
                batch: try library.ownedBatch(after: cursor, limit: min(limit, 20_000))
            )
        case .sharedRequest(let id, let after, let limit):
            let bounds = try library.sharedLogBounds()
            // Before what is kept, or past anything this copy has (the peer followed an earlier copy of the library,
            // and this one is restored from a backup): the whole state instead.
            if after < bounds.compacted || after > bounds.newest {
                return .shared(
                    id: id,
                    after: after,
                    changes: [],
                    next: after,
                    done: true,
                    resyncNeeded: true,
                    horizon: bounds.horizon
                )
            }
            let n = min(limit, 20_000)
            var changes = try library.sharedChangesForSync(after: after, limit: n)
            // At most about 4 MiB of values per answer (a note may be 64 KiB; a frame is at most 8 MiB).
            var bytes = 0
            if let cut = changes.firstIndex(where: { c in
                bytes += 200 + (c.change.value?.utf8.count ?? 0) + c.change.key.utf8.count
                return bytes > Library.batchBytes
            }) {
                changes = Array(changes.prefix(max(1, cut)))
            }
            let complete = changes.count < n && bytes <= Library.batchBytes
            return .shared(
                id: id,
                after: after,
                changes: changes.map { SharedRecordChange(change: $0.change, prev: $0.prev) },
                next: changes.last?.change.seq ?? after,
                done: complete,
                resyncNeeded: false,
                horizon: bounds.horizon
            )
        case .registersRequest(let id, let cursor, let limit):
            // The log's position first: changes after it are pulled as changes once the whole state is in.
            let bounds = try library.sharedLogBounds()
            let n = min(limit, 20_000)
            let registers = try library.sharedRegisters(after: cursor.count == 3 ? cursor : nil, limit: n)
            return .registers(
                id: id,
                start: cursor,
                registers: registers,
                horizon: bounds.horizon,
                logSeq: bounds.newest,
                done: registers.count < n
            )
        case .fileInfoRequest(let id, let path, let full):
            return .fileInfo(id: id, info: files.info(path, fullHash: full))
        case .readRequest(let id, let path, let offset, let length):
            return files.read(id, path, offset: offset, length: length)
        case .pushFolder, .pushOpen, .pushBegin, .pushData, .pushCommit, .pushAbort:
            return receiver.answer(message)
        default:
            return nil
        }
    }
}

/// Follows one peer device for one library: asks for its rows and its shared changes after what was
/// received, and takes an answer only if it starts exactly there (so lost, late, repeated or reordered
/// answers are harmless: a lost one is asked again, the others are ignored). State is saved after each
/// answer taken, so a follower made again after a crash goes on where it was.
public final class SyncFollower {
    public let library: Library
    public let peer: DeviceID
    public private(set) var state: SyncPeerState
    public var batchLimit: Int

    enum Phase: Equatable {
        case owned
        case shared
        case registers(cursor: [String], logSeq: Int64?)
        case idle
    }

    private(set) var phase: Phase = .owned
    private var outstanding: UInt64?
    /// A request sent ahead of taking the answer it follows (`requestAhead`): the one outstanding once that
    /// answer is taken.
    private var ahead: UInt64?
    private var nextID: UInt64 = 1
    /// What was applied since the last round started (rows, changes).
    public private(set) var applied = 0

    /// What the followed device may change here (read at each answer: they may change meanwhile).
    let rights: @Sendable () -> PeerRights

    /// Follows `peer`, which may change here what `rights` allow (a new pairing's by default: metadata, not
    /// settings).
    public convenience init(library: Library, peer: DeviceID, batchLimit: Int = 5_000, rights: PeerRights = .defaults)
        throws
    {
        try self.init(library: library, peer: peer, batchLimit: batchLimit, rights: { rights })
    }

    public init(
        library: Library,
        peer: DeviceID,
        batchLimit: Int = 5_000,
        rights: @escaping @Sendable () -> PeerRights
    ) throws {
        self.library = library
        self.peer = peer
        self.batchLimit = batchLimit
        self.rights = rights
        state = try library.syncPeer(peer)
    }

    /// Why `peer` may not make `change` here, or nil: library settings need `settings`, other shared metadata
    /// (tags, ratings, favorites, notes) `metadata`. The peer is the one that sent it (changes relayed from
    /// others are its word until rows are signed by their owners).
    func refusal(_ change: SharedChange) -> String? {
        let granted = rights()
        if change.record == "setting" {
            return granted.allows(.settings)
                ? nil : "device \(peer) may not change this library's settings here (`sd peer allow \(peer) settings`)"
        }
        return granted.allows(.metadata)
            ? nil : "device \(peer) may not change shared metadata here (`sd peer allow \(peer) metadata`)"
    }

    /// Caught up with everything asked for in this round.
    public var isIdle: Bool { phase == .idle }

    /// A request was sent whose answer has not been taken yet (so `request()` would only ask it again).
    public var isAwaiting: Bool { outstanding != nil }

    /// Starts a new round (the peer said something changed, or it is time to look).
    public func startRound() {
        if phase == .idle {
            phase = .owned
            outstanding = nil
            ahead = nil
        }
    }

    /// Pipelining: for an answer that `take` would accept and that is not the last of its phase, the request
    /// for what follows it, to send before taking it, so the peer reads the next batch while this one is
    /// applied. Nil otherwise (then ask with `request()` after taking it, as usual). Only device-owned
    /// batches are asked ahead: they are what a backfill is made of.
    public func requestAhead(of message: SyncMessage) -> SyncMessage? {
        guard ahead == nil, phase == .owned, case .owned(let id, let start, let batch) = message,
            id == outstanding, start == state.owned, !batch.done, !batch.resyncNeeded
        else { return nil }
        let next = nextID
        nextID += 1
        ahead = next
        return .ownedRequest(id: next, cursor: batch.cursor, limit: batchLimit)
    }

    /// The request to send now (again if its answer was lost), or nil when idle.
    public func request() -> SyncMessage? {
        // Nothing is pulled from a device this one does not sync with.
        guard rights().allows(.sync) else {
            phase = .idle
            outstanding = nil
            return nil
        }
        let id = nextID
        nextID += 1
        outstanding = id
        ahead = nil
        switch phase {
        case .owned: return .ownedRequest(id: id, cursor: state.owned, limit: batchLimit)
        case .shared: return .sharedRequest(id: id, after: state.sharedSeq, limit: batchLimit)
        case .registers(let cursor, _): return .registersRequest(id: id, cursor: cursor, limit: batchLimit)
        case .idle:
            outstanding = nil
            return nil
        }
    }

    /// Takes an answer. Whether it was taken (an answer that does not start where this follower is, or
    /// answers another request than the last one, is ignored).
    ///
    /// #### Errors
    /// `SyncRefusal` when the peer sent what it may not (rows of another device, a clock far ahead): nothing of
    /// it is applied, and the error is recorded for `sd sync status`.
    @discardableResult
    public func take(_ message: SyncMessage) throws -> Bool {
        do {
            return try takeChecked(message)
        } catch let error as SyncRefusal {
            state.lastError = error.message
            try library.saveSyncPeer(state)
            throw error
        }
    }

    private func takeChecked(_ message: SyncMessage) throws -> Bool {
        switch (phase, message) {
        case (.owned, .owned(let id, let start, let batch)):
            guard id == outstanding, start == state.owned else { return false }
            outstanding = nil
            defer { ahead = nil }
            if batch.resyncNeeded {
                // Our cursor is older than the tombstones it keeps: take its whole state again.
                state.owned = OwnedCursor()
                state.fullResync = false
                try library.saveSyncPeer(state)
                return true
            }
            if start.isStart {
                state.pass += 1
                state.fullResync = true
                // Rows of an earlier pass (or of a copy of its library since replaced) still waiting for their
                // parent are not this state's.
                try library.dropWaitingRows(of: peer)
            }
            var next = state
            next.owned = batch.cursor
            next.lastError = nil
            let sweep = batch.done && next.fullResync
            // The rows and how far they go, in one transaction (but a pass's last batch: after its sweep).
            let result = try library.applyOwned(
                batch,
                from: peer,
                pass: state.fullResync ? state.pass : nil,
                saving: sweep ? nil : next
            )
            applied += result.rows + result.deleted
            state = next
            outstanding = ahead
            if batch.done {
                if sweep {
                    applied += try library.sweepOwned(of: peer, pass: state.pass)
                    state.fullResync = false
                    try library.saveSyncPeer(state)
                }
                phase = .shared
            }
            return true
        case (.shared, .shared(let id, let after, let changes, let next, let done, let resync, _)):
            guard id == outstanding, after == state.sharedSeq else { return false }
            outstanding = nil
            if resync {
                phase = .registers(cursor: [], logSeq: nil)
                return true
            }
            applied += try library.mergeSharedChanges(
                changes.map { ($0.change, $0.prev) },
                from: peer,
                refusing: refusal
            )
            state.sharedSeq = next
            if done {
                phase = .idle
                state.lastSyncAt = Date()
            }
            state.lastError = nil
            try library.saveSyncPeer(state)
            return true
        case (
            .registers(let cursor, let logSeq),
            .registers(let id, let start, let registers, _, let seq, let done)
        ):
            guard id == outstanding, start == cursor else { return false }
            outstanding = nil
            let changes: [(SharedChange, String?)] = registers.compactMap { r -> (SharedChange, String?)? in
                guard let stamp = HLCTimestamp(r.hlc) else { return nil }
                return (
                    SharedChange(
                        seq: 0,
                        hlc: r.hlc,
                        record: r.record,
                        key: r.key,
                        field: r.field.isEmpty ? nil : r.field,
                        value: r.value,
                        device: stamp.device.description
                    ),
                    r.prev
                )
            }
            applied += try library.mergeSharedChanges(changes, from: peer, refusing: refusal)
            let logStart = logSeq ?? seq
            if done {
                // Registers only join (last writer wins): nothing here is dropped for not being there.
                state.sharedSeq = logStart
                try library.saveSyncPeer(state)
                phase = .shared
            } else if let last = registers.last {
                phase = .registers(cursor: [last.record, last.key, last.field], logSeq: logStart)
            }
            return true
        default:
            return false
        }
    }

    /// Forgets the count of what was applied (between rounds).
    public func resetApplied() { applied = 0 }
}
