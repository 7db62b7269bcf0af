import Foundation
import SDCore
import SDTestSupport
import Testing

/// The official BLAKE3 test vectors (Tests/Fixtures/blake3-test-vectors.json), every case in all three modes,
/// compared over the whole 131-byte extended output.
struct BLAKE3VectorTests {
    struct Vectors: Decodable {
        struct Case: Decodable, CustomTestStringConvertible, Sendable {
            let input_len: Int
            let hash: String
            let keyed_hash: String
            let derive_key: String
            var testDescription: String { "input_len \(input_len)" }
        }
        let key: String
        let context_string: String
        let cases: [Case]
    }

    static let vectors: Vectors = {
        let data = try! Data(contentsOf: Fixtures.url("blake3-test-vectors.json"))
        return try! JSONDecoder().decode(Vectors.self, from: data)
    }()

    static func input(_ length: Int) -> [UInt8] { (0..<length).map { UInt8($0 % 251) } }

    @Test func allThirtyFiveCasesArePresent() {
        #expect(Self.vectors.cases.count == 35)
    }

    @Test(arguments: vectors.cases)
    func plainHashAndExtendedOutput(_ c: Vectors.Case) {
        var hasher = BLAKE3.Hasher()
        hasher.update(Self.input(c.input_len))
        var reader = hasher.finalizeXOF()
        let expectedLength = c.hash.count / 2
        #expect(Hex.encode(reader.read(count: expectedLength)) == c.hash)
        #expect(hasher.finalize().hex == String(c.hash.prefix(64)))
        #expect(BLAKE3.hash(Self.input(c.input_len)).hex == String(c.hash.prefix(64)))
    }

    @Test(arguments: vectors.cases)
    func keyedHashAndExtendedOutput(_ c: Vectors.Case) {
        var hasher = BLAKE3.Hasher(key: Array(Self.vectors.key.utf8))
        hasher.update(Self.input(c.input_len))
        var reader = hasher.finalizeXOF()
        #expect(Hex.encode(reader.read(count: c.keyed_hash.count / 2)) == c.keyed_hash)
    }

    @Test(arguments: vectors.cases)
    func deriveKeyAndExtendedOutput(_ c: Vectors.Case) {
        var hasher = BLAKE3.Hasher(derivingKeyFromContext: Self.vectors.context_string)
        hasher.update(Self.input(c.input_len))
        var reader = hasher.finalizeXOF()
        #expect(Hex.encode(reader.read(count: c.derive_key.count / 2)) == c.derive_key)
        let short = BLAKE3.deriveKey(context: Self.vectors.context_string, material: Self.input(c.input_len))
        #expect(short.hex == String(c.derive_key.prefix(64)))
    }

    /// Streaming in uneven pieces, and reading the extended output in uneven reads, must give the same bytes.
    @Test(arguments: vectors.cases)
    func streamingInPiecesMatchesOneShot(_ c: Vectors.Case) {
        let input = Self.input(c.input_len)
        var rng = SeededRNG(seed: UInt64(c.input_len))
        var hasher = BLAKE3.Hasher(threads: .automatic)
        var offset = 0
        while offset < input.count {
            let piece = min(Int(rng.next() % 1500) + 1, input.count - offset)
            hasher.update(input[offset..<(offset + piece)])
            offset += piece
        }
        var reader = hasher.finalizeXOF()
        var output: [UInt8] = []
        while output.count < c.hash.count / 2 {
            output += reader.read(count: min(Int(rng.next() % 70) + 1, c.hash.count / 2 - output.count))
        }
        #expect(Hex.encode(output) == c.hash)
    }
}
