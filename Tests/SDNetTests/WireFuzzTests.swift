import Foundation
import SDCore
import SDNet
import SDTestSupport
import Testing

@Suite struct WireFuzzTests {
    @Test func valuesRoundTrip() throws {
        var w = WireWriter()
        let values: [UInt64] = [0, 1, 127, 128, 300, 1 << 35, .max]
        for v in values { w.varint(v) }
        for v: Int64 in [0, -1, 1, .min, .max, -300] { w.signed(v) }
        w.text("héllo")
        w.data([0, 255])
        w.optionalText(nil)
        w.optionalSigned(-5)
        var r = WireReader(w.bytes)
        for v in values { #expect(try r.varint() == v) }
        for v: Int64 in [0, -1, 1, .min, .max, -300] { #expect(try r.signed() == v) }
        #expect(try r.text() == "héllo")
        #expect(try r.data() == [0, 255])
        #expect(try r.optionalText() == nil)
        #expect(try r.optionalSigned() == -5)
        try r.finish()

        let hello = Hello(
            device: .random(),
            name: "n",
            purpose: .pair,
            nonce: Array(repeating: 9, count: 32),
            listenPort: 7373
        )
        #expect(try Hello(hello.frame) == hello)
        let split = try Frame.split(hello.frame.encoded + Refusal("no").frame.encoded + [0, 0])
        #expect(
            split.frames.count == 2 && split.consumed == hello.frame.encoded.count + Refusal("no").frame.encoded.count
        )
        #expect(try Refusal(split.frames[1]).reason == "no")
    }

    /// Random and mutated frames: every one is decoded or refused with a `WireError`, never a crash, a hang or
    /// a huge allocation (lengths are checked against what is there).
    @Test func hostileBytesAreRefusedCleanly() throws {
        let seed = UInt64.random(in: 0...UInt64(UInt32.max))
        print("wire fuzz seed \(seed)")
        var rng = SeededRNG(seed: seed)
        let samples: [[UInt8]] = [
            Hello(device: .random(), name: "device", purpose: .connect, nonce: rng.bytes(32), listenPort: 1).frame
                .encoded,
            Refusal("a reason").frame.encoded,
            Frame(Frame.Kind.pairProof, rng.bytes(32)).encoded,
        ]
        var decoded = 0
        var refused = 0
        for round in 0..<20_000 {
            var bytes: [UInt8]
            switch round % 4 {
            case 0: bytes = rng.bytes(Int(rng.next() % 64))
            case 1:
                bytes = samples[Int(rng.next() % UInt64(samples.count))]
                for _ in 0..<(1 + Int(rng.next() % 4)) where !bytes.isEmpty {
                    bytes[Int(rng.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: rng.next())
                }
            case 2:
                bytes = samples[Int(rng.next() % UInt64(samples.count))]
                bytes = Array(bytes.prefix(Int(rng.next() % UInt64(bytes.count + 1))))
            default:
                // A plausible header with a random length and kind.
                let payload = rng.bytes(Int(rng.next() % 40))
                let length = UInt32(truncatingIfNeeded: rng.next() % 2 == 0 ? UInt64(payload.count + 3) : rng.next())
                bytes = [
                    UInt8(length >> 24), UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF), 1,
                ]
                bytes += [0, UInt8(rng.next() % 6)] + payload
            }
            do {
                let (frames, consumed) = try Frame.split(bytes, maximumLength: 1 << 20)
                #expect(consumed <= bytes.count)
                for frame in frames {
                    do {
                        switch frame.kind {
                        case Frame.Kind.hello: _ = try Hello(frame)
                        case Frame.Kind.refusal: _ = try Refusal(frame)
                        default: break
                        }
                        decoded += 1
                    } catch {
                        refused += 1
                    }
                }
            } catch {
                refused += 1
            }
        }
        #expect(decoded > 1_000 && refused > 1_000, "decoded \(decoded), refused \(refused) (seed \(seed))")
    }
}
