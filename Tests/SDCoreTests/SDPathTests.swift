import Foundation
import SDCore
import SDTestSupport
import Testing

struct SDPathTests {
    static let device = DeviceID("6ba7b810-9dad-11d1-80b4-00c04fd430c8")!

    @Test(arguments: [
        "sd://6ba7b810-9dad-11d1-80b4-00c04fd430c8/home/ana/a.txt",
        "sd://6ba7b810-9dad-11d1-80b4-00c04fd430c8/home/ana/r%C3%A9sum%C3%A9%FF.pdf",
        "sd://6ba7b810-9dad-11d1-80b4-00c04fd430c8/home/ana/a%20b%25c%3F%23.txt",
        "sd://6ba7b810-9dad-11d1-80b4-00c04fd430c8/",
        "sd://content/9c1e5d0a1b2c3d4e",
        "sd://content/4d474ab7-bc7f-5f35-bcaf-22261caad2eb",
    ])
    func parsesAndFormatsBack(_ text: String) throws {
        let path = try SDPath(parsing: text)
        let again = try SDPath(parsing: path.description)
        #expect(again == path)
    }

    @Test func leadingSlashIsTheOneAfterTheDevice() throws {
        let path = try SDPath(parsing: "sd://\(Self.device)/home/me/a.txt")
        #expect(path == .physical(device: Self.device, path: "/home/me/a.txt"))
        #expect(path.pathString == "/home/me/a.txt")
    }

    @Test func readableUTF8StaysLiteralAndOddBytesAreEscaped() {
        let path = SDPath.physical(device: Self.device, path: Array("/tmp/résumé a%?#".utf8) + [0xFF, 0x0A])
        #expect(path.description == "sd://\(Self.device)/tmp/résumé%20a%25%3F%23%FF%0A")
    }

    @Test func contentPathsKeepTheirForm() throws {
        #expect(try SDPath(parsing: "sd://content/ABCDEF0123456789") == .content(ContentID("abcdef0123456789")!))
        let uuid = UUID(uuidString: "4d474ab7-bc7f-5f35-bcaf-22261caad2eb")!
        #expect(try SDPath(parsing: "sd://content/\(uuid.lowercased)") == .contentUUID(uuid))
    }

    @Test(arguments: [
        ("/home/me/a.txt", SDPathError.Code.missingScheme),
        ("http://x/y", .unknownScheme),
        ("sd://", .missingDevice),
        ("sd:///abs", .missingDevice),
        ("sd://not-a-uuid/home", .invalidDeviceID),
        ("sd://6ba7b810-9dad-11d1-80b4-00c04fd430c8", .notAbsolute),
        ("sd://content/", .invalidContentID),
        ("sd://content/xyz", .invalidContentID),
        ("sd://6ba7b810-9dad-11d1-80b4-00c04fd430c8/a%G1", .badEscape),
        ("sd://6ba7b810-9dad-11d1-80b4-00c04fd430c8/a%4", .badEscape),
        ("sd://6ba7b810-9dad-11d1-80b4-00c04fd430c8/a%00b", .nulByte),
        ("sd://6ba7b810-9dad-11d1-80b4-00c04fd430c8/a\tb", .badCharacter),
    ])
    func malformedInputGetsATypedError(_ text: String, _ code: SDPathError.Code) {
        #expect {
            try SDPath(parsing: text)
        } throws: { error in
            (error as? SDPathError)?.code == code && !((error as? SDPathError)?.message.isEmpty ?? true)
        }
    }

    /// Property: any non-empty byte path without NUL comes back exactly, and its text has no raw controls.
    @Test func randomBytePathsRoundTrip() throws {
        var rng = SeededRNG(seed: 0x5D_9A7)
        for round in 0..<5000 {
            let length = Int(rng.next() % 40)
            var bytes: [UInt8] = [UInt8(ascii: "/")]
            for _ in 0..<length {
                // Bias towards interesting bytes: ASCII, '%', '/', high bytes, UTF-8 lead bytes.
                let pick = rng.next() % 6
                let b: UInt8 =
                    switch pick {
                    case 0: UInt8(truncatingIfNeeded: rng.next() % 255 + 1)
                    case 1:
                        [UInt8(ascii: "%"), UInt8(ascii: "/"), UInt8(ascii: "?"), UInt8(ascii: "#"), 0x20][
                            Int(rng.next() % 5)
                        ]
                    case 2: UInt8(truncatingIfNeeded: 0xC2 + rng.next() % 0x33)
                    case 3: UInt8(truncatingIfNeeded: 0x80 + rng.next() % 0x40)
                    default: UInt8(truncatingIfNeeded: 0x61 + rng.next() % 26)
                    }
                bytes.append(b)
            }
            let path = SDPath.physical(device: Self.device, path: bytes)
            let text = path.description
            #expect(!text.utf8.contains { $0 < 0x21 }, "round \(round)")
            let parsed = try SDPath(parsing: text)
            #expect(parsed == path, "round \(round): \(bytes)")
            #expect(parsed.description == text)
        }
    }
}

struct HLCTests {
    static let a = DeviceID("00000000-0000-4000-8000-00000000000a")!
    static let b = DeviceID("00000000-0000-4000-8000-00000000000b")!

    /// Property: timestamps only go up, whatever the wall clock does (including stepping back).
    @Test func nowIsStrictlyIncreasingWhenTheClockStepsBack() {
        var rng = SeededRNG(seed: 42)
        var clock = HLC(device: Self.a)
        var wall: UInt64 = 1_700_000_000_000
        var previous = clock.now(physical: wall)
        for _ in 0..<20_000 {
            let step = Int64(rng.next() % 2000) - 1200  // often backwards
            wall = UInt64(max(0, Int64(wall) + step))
            let next = clock.now(physical: wall)
            #expect(next > previous)
            #expect(next.physical >= wall)
            previous = next
        }
    }

    /// Property: a receive event is after both the remote timestamp and everything local before it.
    @Test func receiveIsAfterBothSides() throws {
        var rng = SeededRNG(seed: 7)
        var left = HLC(device: Self.a), right = HLC(device: Self.b)
        var wallA: UInt64 = 1_000_000, wallB: UInt64 = 1_000_500
        for _ in 0..<10_000 {
            wallA += rng.next() % 50
            wallB += rng.next() % 50
            let sent = right.now(physical: wallB)
            let before = left.last
            let received = try left.receive(sent, physical: wallA)
            #expect(received > sent)
            #expect(received > before)
            if rng.next() % 2 == 0 { _ = left.now(physical: wallA) }
            let back = try right.receive(left.now(physical: wallA), physical: wallB)
            #expect(back > left.last)
        }
    }

    @Test func logicalOverflowMovesToTheNextMillisecond() {
        var clock = HLC(device: Self.a, last: HLCTimestamp(physical: 10, logical: .max, device: Self.a))
        let next = clock.now(physical: 5)
        #expect(next.physical == 11 && next.logical == 0)
    }

    @Test func refusesARemoteClockFarAhead() {
        var clock = HLC(device: Self.a, maxDriftMilliseconds: 1000)
        let before = clock.last
        let remote = HLCTimestamp(physical: 1_000_000, logical: 0, device: Self.b)
        #expect(throws: HLCError.self) { try clock.receive(remote, physical: 10_000) }
        #expect(clock.last == before)
    }

    /// Property: the order is total and the text form sorts the same way (so SQLite TEXT columns can compare).
    @Test func totalOrderMatchesTextOrder() {
        var rng = SeededRNG(seed: 99)
        var stamps: [HLCTimestamp] = []
        for _ in 0..<2000 {
            stamps.append(
                HLCTimestamp(
                    physical: rng.next() % 5,
                    logical: UInt32(rng.next() % 3),
                    device: rng.next() % 2 == 0 ? Self.a : Self.b
                )
            )
        }
        let sorted = stamps.sorted()
        let byText = stamps.sorted { $0.description < $1.description }
        #expect(sorted == byText)
        for s in stamps { #expect(HLCTimestamp(s.description) == s) }
        // Last-writer-wins merge (max) is commutative, associative and idempotent.
        for _ in 0..<500 {
            let x = stamps[Int(rng.next() % 2000)], y = stamps[Int(rng.next() % 2000)],
                z = stamps[Int(rng.next() % 2000)]
            #expect(max(x, y) == max(y, x))
            #expect(max(max(x, y), z) == max(x, max(y, z)))
            #expect(max(x, x) == x)
            // The order is (physical, logical, device), whatever the text form.
            let key = { (t: HLCTimestamp) in (t.physical, t.logical, t.device.description) }
            #expect((x < y) == (key(x) < key(y)) && (x == y) == (key(x) == key(y)), "\(x) \(y)")
        }
    }
}
