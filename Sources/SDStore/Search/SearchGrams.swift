import Foundation

/// The grams of the search index: what `search_postings` lists entries by.
///
/// A name is folded (`SearchText.fold`: lower case, diacritics removed, runs of `_`, `-` and spaces one space),
/// framed by a start and an end mark, and cut into every three consecutive characters (trigrams); each word of
/// it also gives a word-start gram (a mark and the word's first two characters). A query asks for the grams
/// every matching name must have, which gives a superset; the search confirms each candidate on its real name.
///
/// - a word or word prefix `inv`: its word-start gram `·in` and its trigrams (`inv`);
/// - a substring `oice_20`: its trigrams (`oic`, `ice`, `ce `, `e 2`, ` 20`);
/// - a name prefix `tax inv`: the trigrams of `^tax inv`; an exact name `invoice`: those of `^invoice$` (or
///   `^invoice.` for a name with an extension).
///
/// A gram is a 32-bit key: three ASCII characters packed into 21 bits, any other three hashed into 24 bits
/// above them. Hash collisions only add candidates, which the confirmation drops.
public enum SearchGrams {
    static let wordMark: UInt32 = 1
    static let startMark: UInt32 = 2
    static let endMark: UInt32 = 3

    @inline(__always)
    static func key(_ a: UInt32, _ b: UInt32, _ c: UInt32) -> UInt32 {
        if (a | b | c) < 0x80 { return a << 14 | b << 7 | c }
        var h: UInt32 = 0x811C_9DC5
        h = (h ^ a) &* 0x0100_0193
        h = (h ^ b) &* 0x0100_0193
        h = (h ^ c) &* 0x0100_0193
        h ^= h >> 15
        return 0x20_0000 + (h & 0xFF_FFFF)
    }

    @inline(__always)
    static func isWord(_ v: UInt32) -> Bool {
        if v < 0x80 { return (v >= 0x30 && v <= 0x39) || (v >= 0x61 && v <= 0x7A) || (v >= 0x41 && v <= 0x5A) }
        guard let scalar = Unicode.Scalar(v) else { return false }
        return SearchText.isWordScalar(scalar)
    }

    /// The scalars of a name's folded form (as `SearchText.fold` gives it) into `out`, which is emptied first.
    static func foldedScalars(_ bytes: UnsafeRawBufferPointer, into out: inout [UInt32]) {
        out.removeAll(keepingCapacity: true)
        var ascii = true
        for byte in bytes where byte >= 0x80 {
            ascii = false
            break
        }
        guard ascii else {
            for scalar in SearchText.fold(bytes).unicodeScalars { out.append(scalar.value) }
            return
        }
        for byte in bytes {
            var b = UInt32(byte)
            if b >= 0x41 && b <= 0x5A { b += 0x20 }
            if b == 0x5F || b == 0x2D || b == 0x20 {
                if out.last == 0x20 { continue }
                b = 0x20
            }
            out.append(b)
        }
    }

    /// Calls `body` with each gram of a folded name (a gram may come twice).
    @inline(__always)
    static func forEachNameGram(_ s: [UInt32], _ body: (UInt32) -> Void) {
        let n = s.count
        guard n > 0 else { return }
        var p0 = startMark
        var p1 = s[0]
        for i in 1...n {
            let c = i < n ? s[i] : endMark
            body(key(p0, p1, c))
            p0 = p1
            p1 = c
        }
        var previousWord = false
        for i in 0..<n {
            let word = isWord(s[i])
            if word && !previousWord {
                let next = i + 1 < n && isWord(s[i + 1]) ? s[i + 1] : 0
                body(key(wordMark, s[i], next))
            }
            previousWord = word
        }
    }

    /// The grams of a folded name into `grams` (emptied first; a gram may appear twice).
    static func nameGrams(_ s: [UInt32], into grams: inout [UInt32]) {
        grams.removeAll(keepingCapacity: true)
        forEachNameGram(s) { grams.append($0) }
    }

    /// The grams of a name as stored (for tests and small batches).
    public static func nameGrams(_ name: [UInt8]) -> [UInt32] {
        var scalars: [UInt32] = []
        var grams: [UInt32] = []
        name.withUnsafeBytes { foldedScalars($0, into: &scalars) }
        nameGrams(scalars, into: &grams)
        return grams
    }

    static func trigrams(_ s: [UInt32]) -> [UInt32] {
        guard s.count >= 3 else { return [] }
        return (0...(s.count - 3)).map { key(s[$0], s[$0 + 1], s[$0 + 2]) }
    }

    static func scalars(_ text: String) -> [UInt32] { text.unicodeScalars.map(\.value) }

    /// Grams of every name with a word starting with `word` (folded); empty for a one-character word, which
    /// the index cannot narrow.
    public static func wordGrams(_ word: String) -> [UInt32] {
        let s = scalars(word)
        guard s.count >= 2 else { return [] }
        return [key(wordMark, s[0], s[1])] + trigrams(s)
    }

    /// Grams of every name holding `text` (lower-cased; folded here as names are); empty below three
    /// characters.
    public static func substringGrams(_ text: String) -> [UInt32] {
        trigrams(scalars(SearchText.fold(text)))
    }

    /// Grams of every name starting with `folded`; empty for a single character.
    public static func prefixGrams(_ folded: String) -> [UInt32] {
        trigrams([startMark] + scalars(folded))
    }

    /// Grams of the names that are exactly `folded`, and of those that are `folded` plus an extension.
    public static func exactGrams(_ folded: String) -> [[UInt32]] {
        let s = [startMark] + scalars(folded)
        return [trigrams(s + [endMark]), trigrams(s + [0x2E])]
    }
}

/// Postings: the ids of the entries with one gram, ascending, in chunks of at most `maxBytes` (one row of
/// `search_postings` each, small enough to stay inside a B-tree page): the first id, then each id as its
/// difference from the previous one, all as LEB128 varints.
enum Postings {
    static let maxBytes = 900

    @inline(__always)
    static func append(_ value: UInt64, to bytes: inout [UInt8]) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    @inline(__always)
    static func size(_ value: UInt64) -> Int {
        var v = value
        var n = 1
        while v >= 0x80 {
            v >>= 7
            n += 1
        }
        return n
    }

    /// Decodes a chunk into `ids` (emptied first). Malformed bytes end the chunk early rather than trap.
    static func decode(_ bytes: UnsafeRawBufferPointer, into ids: inout [Int64]) {
        ids.removeAll(keepingCapacity: true)
        var i = 0
        var previous: Int64 = 0
        var first = true
        let count = bytes.count
        while i < count {
            var value: UInt64 = 0
            var shift: UInt64 = 0
            while true {
                guard i < count, shift < 64 else { return }
                let b = bytes[i]
                i += 1
                value |= UInt64(b & 0x7F) << shift
                if b < 0x80 { break }
                shift += 7
            }
            let id = first ? Int64(bitPattern: value) : previous &+ Int64(bitPattern: value)
            first = false
            ids.append(id)
            previous = id
        }
    }

    static func decode(_ bytes: [UInt8]) -> [Int64] {
        var ids: [Int64] = []
        bytes.withUnsafeBytes { decode($0, into: &ids) }
        return ids
    }

    /// Ascending ids as chunks.
    static func encode(_ ids: some Collection<Int64>) -> [(first: Int64, bytes: [UInt8])] {
        var chunks: [(first: Int64, bytes: [UInt8])] = []
        var current: [UInt8] = []
        var first: Int64 = 0
        var last: Int64 = 0
        for id in ids {
            if !current.isEmpty {
                let delta = UInt64(id - last)
                if current.count + size(delta) <= maxBytes {
                    append(delta, to: &current)
                    last = id
                    continue
                }
                chunks.append((first, current))
                current = []
            }
            append(UInt64(id), to: &current)
            first = id
            last = id
        }
        if !current.isEmpty { chunks.append((first, current)) }
        return chunks
    }
}

/// Builds the postings of many names in memory, ids ascending (a whole index, or one part of it by id range).
///
/// #### Implementation details
/// Appending each posting to its list as it comes cost about 70 ns (a list object, an array in it, exclusivity
/// and uniqueness checks, each a cache miss away): 2 s for a million names on two cores. Postings are instead
/// gathered as (list, id) pairs, a quarter million at a time, counting-sorted by list, and each list's run of
/// ids encoded in one go. A struct, so that its arrays are checked for exclusive access when compiled rather
/// than on every access (as a class's are: that was a quarter of the time).
struct PostingBuilder {
    struct List {
        var count: Int
        var chunks: [(first: Int64, bytes: [UInt8])]
    }

    /// List slots of ASCII grams by key (a direct table, for whole builds); others through the dictionary.
    private var direct: [Int32]
    private var hashed: [UInt32: Int32] = [:]
    private(set) var keys: [UInt32] = []
    private var last: [Int64] = []
    private var firsts: [Int64] = []
    private var counts: [Int] = []
    private var current: [[UInt8]] = []
    private var finished: [[(first: Int64, bytes: [UInt8])]] = []
    /// The gathered (list, id) pairs, and a chunk being encoded: plain memory.
    private final class Buffers {
        let pairSlots = UnsafeMutablePointer<Int32>.allocate(capacity: PostingBuilder.batch)
        let pairIDs = UnsafeMutablePointer<Int64>.allocate(capacity: PostingBuilder.batch)
        let scratch = UnsafeMutablePointer<UInt8>.allocate(capacity: Postings.maxBytes + 16)
        deinit {
            pairSlots.deallocate()
            pairIDs.deallocate()
            scratch.deallocate()
        }
    }
    private let buffers = Buffers()
    private var pairSlots: UnsafeMutablePointer<Int32> { buffers.pairSlots }
    private var pairIDs: UnsafeMutablePointer<Int64> { buffers.pairIDs }
    private var scratch: UnsafeMutablePointer<UInt8> { buffers.scratch }
    private var pairs = 0
    private var scalars: [UInt32] = []
    private(set) var names = 0
    static let batch = 1 << 18

    init(large: Bool) {
        direct = large ? [Int32](repeating: -1, count: 1 << 21) : []
    }

    /// Adds a name; ids must come in ascending order.
    mutating func add(id: Int64, name: UnsafeRawBufferPointer) {
        SearchGrams.foldedScalars(name, into: &scalars)
        names += 1
        // A name has at most one trigram per character and one word start per two.
        if pairs + 2 * scalars.count + 2 > Self.batch { flush() }
        guard pairs + 2 * scalars.count + 2 <= Self.batch else { return }
        SearchGrams.forEachNameGram(scalars) { gram in
            pairSlots[pairs] = slot(gram)
            pairIDs[pairs] = id
            pairs += 1
        }
    }

    @inline(__always)
    private mutating func slot(_ gram: UInt32) -> Int32 {
        if gram < 1 << 21 && !direct.isEmpty {
            let slot = direct[Int(gram)]
            if slot >= 0 { return slot }
            direct[Int(gram)] = Int32(keys.count)
        } else if let slot = hashed[gram] {
            return slot
        } else {
            hashed[gram] = Int32(keys.count)
        }
        keys.append(gram)
        last.append(-1)
        firsts.append(0)
        counts.append(0)
        current.append([])
        finished.append([])
        return Int32(keys.count - 1)
    }

    /// Sorts the gathered pairs by list and encodes each list's run.
    private mutating func flush() {
        guard pairs > 0 else { return }
        let n = keys.count
        var start = [Int](repeating: 0, count: n + 1)
        for i in 0..<pairs { start[Int(pairSlots[i]) + 1] += 1 }
        for i in 0..<n { start[i + 1] += start[i] }
        let sorted = UnsafeMutablePointer<Int64>.allocate(capacity: pairs)
        defer { sorted.deallocate() }
        var fill = start
        for i in 0..<pairs {
            let slot = Int(pairSlots[i])
            sorted[fill[slot]] = pairIDs[i]
            fill[slot] += 1
        }
        pairs = 0
        for slot in 0..<n where start[slot + 1] > start[slot] {
            appendRun(slot, UnsafeBufferPointer(start: sorted + start[slot], count: start[slot + 1] - start[slot]))
        }
    }

    @inline(__always)
    private func put(_ value: UInt64, at length: inout Int) {
        var v = value
        while v >= 0x80 {
            scratch[length] = UInt8(truncatingIfNeeded: v) | 0x80
            length += 1
            v >>= 7
        }
        scratch[length] = UInt8(v)
        length += 1
    }

    private mutating func appendRun(_ slot: Int, _ ids: UnsafeBufferPointer<Int64>) {
        var length = current[slot].count
        if length > 0 {
            current[slot].withUnsafeBufferPointer { scratch.update(from: $0.baseAddress!, count: length) }
        }
        var lastID = last[slot]
        var first = firsts[slot]
        var count = counts[slot]
        for id in ids where id != lastID {
            if length > 0 {
                let delta = UInt64(id - lastID)
                if length + Postings.size(delta) <= Postings.maxBytes {
                    put(delta, at: &length)
                    lastID = id
                    count += 1
                    continue
                }
                finished[slot].append((first, Array(UnsafeBufferPointer(start: scratch, count: length))))
                length = 0
            }
            put(UInt64(id), at: &length)
            first = id
            lastID = id
            count += 1
        }
        current[slot] = Array(UnsafeBufferPointer(start: scratch, count: length))
        last[slot] = lastID
        firsts[slot] = first
        counts[slot] = count
    }

    /// Every list by gram (after the last name).
    /// Every list by gram, after the last name.
    mutating func finish() -> [UInt32: List] {
        flush()
        var result: [UInt32: List] = [:]
        result.reserveCapacity(keys.count)
        for (slot, key) in keys.enumerated() {
            var chunks = finished[slot]
            if !current[slot].isEmpty { chunks.append((firsts[slot], current[slot])) }
            result[key] = List(count: counts[slot], chunks: chunks)
        }
        return result
    }
}
