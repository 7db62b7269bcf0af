import ArgumentParser
import Foundation
import SDAPI
import SDCore
import SDNet
import SDStore
import SDSync
import Synchronization

/// Runs async work from the synchronous CLI (the network is async; commands are not).
func waitFor<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
    let result = Mutex<Result<T, any Error>?>(nil)
    let done = DispatchSemaphore(value: 0)
    Task {
        do {
            let value = try await body()
            result.withLock { $0 = .success(value) }
        } catch {
            result.withLock { $0 = .failure(error) }
        }
        done.signal()
    }
    done.wait()
    return try result.withLock { $0! }.get()
}

/// This device's network endpoint (key, paired devices) for commands run without sdd.
func thisEndpoint() throws -> PeerEndpoint {
    try PeerEndpoint.forThisDevice(configDirectory: DeviceIdentity.configDirectory())
}

struct PairCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pair",
        abstract: "Pair this device with another: show a code here, type it there.",
        discussion: reflow(
            """
            On the first device (sdd must run there: it answers the other device):
              sd pair                       # prints HOST:PORT/XXXX-XXXX-XXXX-XXXX and waits
            On the second:
              sd pair join HOST:PORT/XXXX-XXXX-XXXX-XXXX
            The code works once, for 5 minutes. Both devices prove they know it without sending it, then each
            keeps the other's key: from then on they accept each other, and nobody else.
            """
        ),
        subcommands: [Show.self, Join.self],
        defaultSubcommand: Show.self
    )

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "show",
            abstract: "Print a pairing code and wait for the other device."
        )
        @OptionGroup var global: GlobalOptions
        @OptionGroup var libraryOptions: LibraryOptions
        @Option(help: "The address the other device reaches this one at (default: this machine's first).")
        var host: String?
        @Option(help: "How long the code works, in minutes.") var minutes = 5

        func run() throws {
            guard let daemon = DaemonLink.client(for: libraryOptions) else {
                throw UserError("sdd does not run: start it first (`sd daemon start`); it answers the other device")
            }
            let opened = try DaemonLink.call {
                try daemon.post("/v1/pair", PairRequest(host: host, minutes: minutes), PairState.self)
            }
            guard let code = opened.code else { throw UserError(opened.reason ?? "no pairing code") }
            if global.json {
                try Output.json(opened)
            } else {
                print("On the other device, run:\n  sd pair join \(code)\nWaiting (\(minutes) min)...")
            }
            fflush(nil)  // every stream: the code must be seen now, even through a pipe
            while true {
                Thread.sleep(forTimeInterval: 0.2)
                let state = try DaemonLink.call { try daemon.get("/v1/pair", PairState.self) }
                switch state.state {
                case "paired":
                    if let peer = state.peer {
                        if global.json { return try Output.json(peer) }
                        return print("paired with \(peer.name) (\(peer.id), key \(peer.fingerprint))")
                    }
                    return
                case "failed": throw UserError(state.reason ?? "pairing failed")
                case "waiting": continue
                default: throw UserError("the pairing code was withdrawn")
                }
            }
        }
    }

    struct Join: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Pair with the device that shows CODE.",
            discussion: "Example:\n  sd pair join 192.168.1.20:7373/K7Q4-M2XD-9RTA-HW3C"
        )
        @OptionGroup var global: GlobalOptions
        @OptionGroup var libraryOptions: LibraryOptions
        @Argument(help: "The code the other device printed.") var code: String

        func run() throws {
            let peer: PeerView
            if let daemon = DaemonLink.client(for: libraryOptions) {
                peer = try DaemonLink.call { try daemon.post("/v1/pair/join", JoinRequest(code: code), PeerView.self) }
            } else {
                let parsed = try PairingCode(parsing: code)
                let endpoint = try thisEndpoint()
                peer = PeerView(try waitFor { try await endpoint.join(parsed) })
            }
            if global.json { return try Output.json(peer) }
            print("paired with \(peer.name) (\(peer.id), key \(peer.fingerprint))")
        }
    }
}

struct PeerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "peer",
        abstract: "The devices paired with this one.",
        discussion: reflow(
            """
            What a paired device may do here is decided here: a new pairing may read files in this device's
            locations, sync the library's index and change shared metadata (tags, ratings, notes); nothing else
            until you allow it. Rights: read, sync, metadata, settings, write, overwrite, act, relay (read,
            write, overwrite and act may be given per location).

            Examples:
              sd peer list
              sd peer add 192.168.1.30:7373     # where a paired device can be reached
              sd peer allow laptop write --location ~/Inbox   # it may send files into that location
              sd peer deny laptop read --location ~/Private   # ...and not read that one
              sd peer rekey laptop              # it was reinstalled: the next pairing may give it a new key
              sd peer remove laptop             # it is refused from now on
            """
        ),
        subcommands: [List.self, Add.self, Allow.self, Deny.self, Rekey.self, Remove.self],
        defaultSubcommand: List.self
    )

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List this device and its paired devices.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var libraryOptions: LibraryOptions

        func run() throws {
            let answer: PeersAnswer
            if let daemon = DaemonLink.client(for: libraryOptions) {
                answer = try DaemonLink.call { try daemon.get("/v1/peers", PeersAnswer.self) }
            } else {
                let endpoint = try thisEndpoint()
                answer = PeersAnswer(
                    device: endpoint.device.description,
                    name: endpoint.name,
                    fingerprint: DeviceKey.fingerprint(endpoint.key.publicKey),
                    listening: nil,
                    peers: try endpoint.peers.all().map { PeerView($0) }
                )
            }
            if global.json { return try Output.json(answer) }
            let listening = answer.listening.map { "accepting peers on port \($0)" } ?? "not accepting peers (sdd)"
            print("this device: \(answer.name) \(answer.device) key \(answer.fingerprint), \(listening)")
            if answer.peers.isEmpty { print("no paired devices; `sd pair` pairs one") }
            let names = PeerRightsCommand.locationNames(libraryOptions)
            for p in answer.peers {
                print("\(p.id)  \(p.name)  key \(p.fingerprint)  \(p.addresses.joined(separator: ", "))")
                let rights = p.rights.map { r in names.reduce(r) { $0.replacingOccurrences(of: $1.key, with: $1.value) }
                }
                print("    may: \(rights.isEmpty ? "nothing" : rights.joined(separator: ", "))")
            }
        }
    }

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Note where a paired device can be reached (it is asked who it is; unpaired ones are refused)."
        )
        @OptionGroup var global: GlobalOptions
        @OptionGroup var libraryOptions: LibraryOptions
        @Argument(help: "HOST:PORT") var address: String

        func run() throws {
            let peer: PeerView
            if let daemon = DaemonLink.client(for: libraryOptions) {
                peer = try DaemonLink.call {
                    try daemon.post("/v1/peers/add", AddressRequest(address: address), PeerView.self)
                }
            } else {
                let endpoint = try thisEndpoint()
                let address = self.address
                let link = try waitFor { try await endpoint.connect(to: address) }
                try waitFor { await link.close() }
                peer = PeerView(try endpoint.peers.peer(link.peer.id) ?? link.peer)
            }
            if global.json { return try Output.json(peer) }
            print("\(peer.name) (\(peer.id)) is reachable at \(address)")
        }
    }

    struct Allow: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Let a paired device do something here (everywhere, or in one location).",
            discussion: reflow(
                """
                Examples:
                  sd peer allow laptop write --location ~/Inbox
                  sd peer allow laptop settings
                """
            )
        )
        @OptionGroup var global: GlobalOptions
        @OptionGroup var libraryOptions: LibraryOptions
        @Argument(help: "The device: its id or name.") var device: String
        @Argument(help: "read, sync, metadata, settings, write, overwrite, act or relay.") var right: String
        @Option(help: "Only in this location (its name or path).") var location: String?

        func run() throws {
            try PeerRightsCommand.change(device, right, location, libraryOptions, global, allow: true)
        }
    }

    struct Deny: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Take a right back from a paired device (everywhere, or in one location).",
            discussion: reflow(
                """
                Examples:
                  sd peer deny laptop metadata
                  sd peer deny laptop read --location ~/Private
                """
            )
        )
        @OptionGroup var global: GlobalOptions
        @OptionGroup var libraryOptions: LibraryOptions
        @Argument(help: "The device: its id or name.") var device: String
        @Argument(help: "read, sync, metadata, settings, write, overwrite, act or relay.") var right: String
        @Option(help: "Only in this location (its name or path).") var location: String?

        func run() throws {
            try PeerRightsCommand.change(device, right, location, libraryOptions, global, allow: false)
        }
    }

    struct Rekey: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Let the next pairing with a device (within 10 minutes) give it a new key.",
            discussion: reflow(
                """
                A pairing never replaces the key pinned for a device: one presenting another key under a paired
                device's id is refused. When that device really has a new key (reinstalled, its config lost), run
                this here, then pair again; compare the fingerprints shown here and by `sd peer list` there.
                """
            )
        )
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The device: its id or name.") var device: String

        func run() throws {
            let endpoint = try thisEndpoint()
            let peer = try Operations.pairedDevice(device, endpoint.peers)
            guard let now = try endpoint.peers.allowRekey(peer.id) else {
                throw UserError("no paired device '\(device)'")
            }
            if global.json { return try Output.json(PeerView(now)) }
            print(
                "\(peer.name) (\(peer.id)) keeps key \(DeviceKey.fingerprint(now.keyBytes)) until it pairs again within 10 minutes; "
                    + "then `sd peer list` shows the new key: compare it with `sd peer list` on that device"
            )
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Forget a paired device: it is refused from now on.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The device: its id or name.") var device: String

        func run() throws {
            let endpoint = try thisEndpoint()
            let peer = try Operations.pairedDevice(device, endpoint.peers)
            try endpoint.peers.remove(peer.id)
            if global.json { return try Output.json(MessageAnswer(message: "removed \(peer.id)")) }
            print("forgot \(peer.name) (\(peer.id)); pair again to sync with it")
        }
    }
}

struct SyncCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sync",
        abstract: "Library sync with other devices: its state, and edits that lost to concurrent ones.",
        discussion: reflow(
            """
            sdd syncs the library with every device it is shared with (`sd library share DEVICE`), whenever they
            are reachable. Each device's files are written by that device only; tags, ratings and notes merge
            (the last edit wins, the losing one of a concurrent edit is kept here).

            Examples:
              sd sync status
              sd sync conflicts
              sd sync conflicts --restore 3
            """
        ),
        subcommands: [Status.self, Conflicts.self],
        defaultSubcommand: Status.self
    )

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Peers, how far each is followed, and errors.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var libraryOptions: LibraryOptions

        func run() throws {
            let peers: [PeerSyncStatus]
            if let daemon = DaemonLink.client(for: libraryOptions) {
                peers = try DaemonLink.call { try daemon.get("/v1/sync", [PeerSyncStatus].self) }
            } else {
                let library = try libraryOptions.open()
                defer { try? library.close() }
                let known = try? thisEndpoint().peers
                peers = try library.syncPeers().map { s in
                    PeerSyncStatus(
                        device: s.device,
                        name: (try? known?.peer(s.device)?.name) ?? "",
                        connected: false,
                        address: nil,
                        caughtUp: false,
                        lastSyncAt: s.lastSyncAt,
                        lastError: s.lastError,
                        applied: 0,
                        ownedSeq: s.owned.entry.first ?? 0,
                        sharedSeq: s.sharedSeq,
                        rttMilliseconds: nil
                    )
                }
            }
            if global.json { return try Output.json(peers) }
            if peers.isEmpty {
                print("this library is not shared with any device; `sd library share DEVICE` shares it")
            }
            let formatter = ISO8601DateFormatter()
            for p in peers {
                let state = p.connected ? (p.caughtUp ? "in sync" : "syncing") : "not connected"
                let last = p.lastSyncAt.map { "last in sync \(formatter.string(from: $0))" } ?? "never in sync"
                let rtt = p.rttMilliseconds.map { String(format: ", %.1f ms", $0) } ?? ""
                print(
                    "\(p.name.isEmpty ? p.device.description : p.name)  \(state)\(rtt)  \(last)  rows through \(p.ownedSeq), changes through \(p.sharedSeq)"
                        + (p.lastError.map { "\n  last error: \($0)" } ?? "")
                )
            }
        }
    }

    struct Conflicts: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Edits that lost to a concurrent edit on another device; restore or dismiss them."
        )
        @OptionGroup var global: GlobalOptions
        @OptionGroup var libraryOptions: LibraryOptions
        @Option(help: "Make this conflict's losing value the current one (a new edit, synced as any).")
        var restore: Int64?
        @Option(help: "Close this conflict, keeping the current value.") var dismiss: Int64?

        func run() throws {
            let library = try libraryOptions.open()
            defer { try? library.close() }
            if let id = restore ?? dismiss {
                guard try library.resolveConflict(id, restore: restore != nil) else {
                    throw UserError("no open conflict \(id) (sd sync conflicts lists them)")
                }
                return print(restore != nil ? "restored conflict \(id)" : "dismissed conflict \(id)")
            }
            let conflicts = try library.syncConflicts()
            if global.json { return try Output.json(conflicts) }
            if conflicts.isEmpty { print("no conflicts") }
            for c in conflicts {
                let field = c.field.isEmpty ? "" : ".\(c.field)"
                print(
                    "\(c.id)  \(c.record) \(c.key)\(field): kept \(c.winnerValue ?? "(none)"), lost \(c.value ?? "(none)")"
                )
            }
        }
    }
}

extension LibraryCommand {
    struct Share: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Share this library with a paired device (it may then join it).",
            discussion: "Example:\n  sd library share laptop"
        )
        @OptionGroup var global: GlobalOptions
        @OptionGroup var libraryOptions: LibraryOptions
        @Argument(help: "The paired device: its id or name.") var device: String

        func run() throws {
            let answer: MessageAnswer
            if let daemon = DaemonLink.client(for: libraryOptions) {
                answer = try DaemonLink.call {
                    try daemon.post("/v1/sync/share", DeviceRequest(device: device), MessageAnswer.self)
                }
            } else {
                let library = try libraryOptions.open()
                defer { try? library.close() }
                answer = try Operations.share(library, with: try Operations.pairedDevice(device, thisEndpoint().peers))
            }
            if global.json { return try Output.json(answer) }
            print(answer.message)
        }
    }

    struct Join: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Hold a library a paired device shares with this one: made here, filled from it.",
            discussion: reflow(
                """
                Example:
                  sd library join laptop                 # its only shared library
                  sd library join laptop --name Photos
                Then `sd daemon start --library NAME` keeps it in sync.
                """
            )
        )
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The paired device: its id or name.") var device: String
        @Option(help: "Which of its libraries (when it shares several).") var name: String?
        @Option(name: .customLong("in"), help: ArgumentHelp("Create it in this folder.", valueName: "dir"))
        var directory: String?

        func run() throws {
            let endpoint = try thisEndpoint()
            let peer = try Operations.pairedDevice(device, endpoint.peers)
            guard let address = peer.addresses.first else {
                throw UserError("no address known for \(peer.name); run `sd peer add HOST:PORT`")
            }
            let id = peer.id
            let offered = try waitFor { try await SyncService.libraries(sharedBy: id, at: address, endpoint: endpoint) }
            let chosen = offered.filter { name == nil || $0.name == name || $0.id.description == name }
            guard chosen.count == 1 else {
                throw UserError(
                    offered.isEmpty
                        ? "\(peer.name) shares no library with this device; run `sd library share \(endpoint.device)` there"
                        : "\(peer.name) shares \(offered.map(\.name).joined(separator: ", ")); say which with --name"
                )
            }
            let locator = LibraryLocator()
            let device = try DeviceIdentity.loadOrCreate(configDirectory: DeviceIdentity.configDirectory())
            let library = try Library.create(
                name: chosen[0].name,
                in: directory ?? locator.dataDirectory,
                device: device,
                id: chosen[0].id
            )
            defer { try? library.close() }
            try library.saveSyncPeer(SyncPeerState(device: id))
            let started = Date()
            let pulled = try whileWaiting("pulling the index from \(peer.name)", enabled: !global.json) {
                try waitFor {
                    try await SyncService.pullOnce(library: library, from: id, at: address, endpoint: endpoint)
                }
            }
            let pullSeconds = Date().timeIntervalSince(started)
            // Searchable at once (else searches read every new name until sdd catches up).
            try whileWaiting("making it searchable", enabled: !global.json) {
                while try library.catchUpSearch() > 0 {}
            }
            let total = Date().timeIntervalSince(started)
            if global.json {
                return try Output.json(
                    JoinAnswer(
                        library: library.path,
                        rows: pulled.applied,
                        bytes: pulled.bytes,
                        pullSeconds: pullSeconds,
                        seconds: total
                    )
                )
            }
            print(
                "joined library '\(chosen[0].name)' (\(library.path)): \(pulled.applied) rows (\(pulled.bytes / 1024) KiB) from \(peer.name) in \(String(format: "%.1f", pullSeconds)) s, searchable after \(String(format: "%.1f", total)) s; `sd daemon start --library \(chosen[0].name)` keeps it in sync"
            )
        }
    }
}

/// `sd library join --json`.
struct JoinAnswer: Codable {
    var library: String
    var rows: Int
    var bytes: Int
    var pullSeconds: Double
    var seconds: Double
}

/// `sd peer allow|deny`: rights kept in peers.json (sdd reads them again when the file changes).
enum PeerRightsCommand {
    static func change(
        _ device: String,
        _ right: String,
        _ location: String?,
        _ libraryOptions: LibraryOptions,
        _ global: GlobalOptions,
        allow: Bool
    ) throws {
        guard let which = PeerRights.Right(rawValue: right) else {
            throw UserError(
                "'\(right)' is not a right; rights: \(PeerRights.Right.allCases.map(\.rawValue).joined(separator: ", "))"
            )
        }
        var uuid: String?
        var shown = "everywhere"
        if let location {
            guard which.perLocation else {
                throw UserError("\(which.rawValue) is not given per location (it applies to the whole library)")
            }
            let library = try libraryOptions.open()
            defer { try? library.close() }
            let found = try Operations.locations([location], library: library)
            guard let one = found.first else { throw UserError("no location '\(location)' (sd location list)") }
            uuid = one.uuid
            shown = "in location '\(one.name)'"
        }
        let endpoint = try thisEndpoint()
        let peer = try Operations.pairedDevice(device, endpoint.peers)
        let saved = try endpoint.peers.setRights(peer.id) { rights in
            if allow { rights.allow(which, location: uuid) } else { rights.deny(which, location: uuid) }
        }
        guard let saved else { throw UserError("no paired device '\(device)'") }
        if global.json { return try Output.json(PeerView(saved)) }
        print(
            "\(peer.name) \(allow ? "may now" : "may no longer") \(which.meaning) (\(shown)); it may: "
                + (saved.granted.described(locationName: { locationNames(libraryOptions)[$0] ?? $0 }).joined(
                    separator: ", "
                ))
        )
    }

    /// Location uuid -> name, for showing rights (empty when the library cannot be opened).
    static func locationNames(_ options: LibraryOptions) -> [String: String] {
        guard let library = try? options.open() else { return [:] }
        defer { try? library.close() }
        return Dictionary(((try? library.fetchLocations()) ?? []).map { ($0.uuid, $0.name) }) { a, _ in a }
    }
}
