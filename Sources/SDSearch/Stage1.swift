import Foundation
import SDCore
import SDStore

/// Where the head of a text search ends (see `Stage1.head`): names at or above `name`, exact and prefix
/// matches at or above `exact` (0: all).
struct HeadBounds: Codable, Equatable {
    var name: Int64
    var exact: Int64

    /// Whether a candidate belongs to the head (entries matched through their folders never do).
    func holds(_ c: SearchCandidate) -> Bool {
        guard c.tier != .path else { return false }
        return c.row.id >= name || ((c.tier == .exact || c.tier == .prefix) && c.row.id >= exact)
    }
}

/// The first stage of a search, inside one read snapshot: candidates from the indexes, rows through the
/// filters, every candidate confirmed against its real name (and its folders' names), and its tier.
struct Stage1 {
    let snapshot: SearchSnapshot
    var request: SearchRequest
    let filters: SearchFilters
    let want: Int
    let candidateLimit: Int
    let cancelled: () -> Bool
    var query: SearchQuery { request.query }

    func check() throws { if cancelled() { throw CancellationError() } }

    /// What `head` found: the head's members, what the parser and the index had to say, and the bounds that
    /// define the head (for the pages after).
    struct Head {
        var candidates: [SearchCandidate]
        var notes: [String]
        var bounds: HeadBounds
        var idf: [Double]
        /// The words searched inside names instead (see `effectiveQuery`).
        var moved: [String]
    }

    /// The query as searched: words that start no word of any name are looked for inside names instead.
    /// `moved`: those words as the first page found them (later pages keep its choice, whatever the index
    /// learned meanwhile).
    func effectiveQuery(moved given: [String]?) throws -> (query: SearchQuery, notes: [String], moved: [String]) {
        var query = self.query
        var notes = query.notes
        var moved: [String] = []
        if let given {
            moved = given.filter { query.words.contains($0) }
        } else if try snapshot.indexedThrough() > 0 {
            let frequencies = try snapshot.documentFrequencies(query.words)
            moved = zip(query.words, frequencies.counts).filter { $0.1 == 0 && $0.0.count >= 3 }.map(\.0)
        }
        for word in moved {
            query.words.removeAll { $0 == word }
            query.substrings.append(word)
            notes.append("no name has a word starting with '\(word)': searched inside names instead")
        }
        return (query, notes, moved)
    }

    /// The head of a text search: every entry whose name matches and whose id is at or above `bounds.name`,
    /// and every exact-name or name-prefix match at or above `bounds.exact`. Without `bounds` (a first page)
    /// the newest candidates are read a window at a time until enough are confirmed, and the bounds are where
    /// that stopped (0: nothing was left out). The head is what the sort orders; the rest of the matches
    /// follow it, newest first (`rest`).
    func head(bounds given: HeadBounds?, idf frozen: [Double]?, moved: [String]?) throws -> Head {
        let (query, notes, movedWords) = try effectiveQuery(moved: moved)
        // IDF of the query's words, in the order the reranker reads them (words, then phrases' words).
        let phraseWords = query.phrases.flatMap { $0 }
        let idf: [Double]
        if let frozen {
            idf = frozen
        } else {
            let frequencies = try snapshot.documentFrequencies(self.query.words)
            let phraseFrequencies = try snapshot.documentFrequencies(phraseWords)
            let total = Double(frequencies.total)
            idf = (frequencies.counts + phraseFrequencies.counts).map { df in
                log(1 + (total - Double(df) + 0.5) / (Double(df) + 0.5))
            }
        }
        var seen: Set<Int64> = []
        var candidates: [SearchCandidate] = []
        var bounds = given ?? HeadBounds(name: 0, exact: 0)
        // Exact names and name prefixes first, whatever their age (a name's start and end are grams too).
        let folded = query.foldedText
        if !folded.isEmpty && query.substrings.isEmpty {
            var ids: [Int64] = []
            var lowest: Int64 = 0
            let sets =
                SearchGrams.exactGrams(folded).map { ($0, 200) } + [(SearchGrams.prefixGrams(folded), max(want, 100))]
            for (grams, limit) in sets {
                if let given {
                    ids += try snapshot.postingMatches(grams, limit: .max, downTo: given.exact)
                } else {
                    let found = try snapshot.postingMatches(grams, limit: limit)
                    // A list cut at its limit: the head takes what is at or above where it was cut. A list the
                    // grams cannot give (one character) is all cut: its matches are in the rest.
                    if grams.isEmpty {
                        lowest = .max
                    } else if found.count >= limit, let last = found.last {
                        lowest = max(lowest, last)
                    }
                    ids += found
                }
            }
            if given == nil { bounds.exact = lowest }
            candidates += try confirm(ids.filter { seen.insert($0).inserted }, query, idf: idf, folders: nil)
        }
        let grams =
            (query.words + phraseWords).flatMap(SearchGrams.wordGrams)
            + (query.substrings + query.inside).flatMap(SearchGrams.substringGrams)
        // Indexed names with every gram, newest first, a window at a time (the grams give a superset). A query
        // they cannot narrow (one letter, a two-letter substring) reads names.
        let enough = max(want * 2, 100)
        var before = Int64.max
        var scanned = 0
        var windowSize = min(candidateLimit, enough + enough / 2)
        // Whether every posting was read (else the head ends where the reading stopped).
        var exhausted = false
        while given != nil || candidates.count < enough {
            try check()
            let window: [Int64]
            let read: Int
            let downTo = given?.name ?? .min
            if !grams.isEmpty {
                window = try snapshot.postingMatches(grams, limit: windowSize, before: before, downTo: downTo)
                read = window.count
                guard let last = window.last else {
                    exhausted = true
                    break
                }
                before = last
            } else {
                let rows = try snapshot.indexedEntries(before: before, limit: 20_000).filter { $0.id >= downTo }
                read = rows.count
                guard let last = rows.last else {
                    exhausted = true
                    break
                }
                before = last.id
                window = rows.filter {
                    !cannotHold($0.name, query) && matchesName(SearchText.fold($0.name), raw: $0.name, query)
                }.map(\.id)
            }
            let full = read == (grams.isEmpty ? 20_000 : windowSize)
            scanned += read
            candidates += try confirm(window.filter { seen.insert($0).inserted }, query, idf: idf, folders: nil)
            if !full {
                exhausted = true
                break
            }
            windowSize = candidateLimit
            if given == nil && scanned >= (grams.isEmpty ? 200_000 : candidateLimit * 20) { break }
        }
        // (Never started, because exact and prefix matches were enough: the head has only those.)
        if given == nil { bounds.name = exhausted ? 0 : before }
        // Entries the search index has not caught up with yet (new, renamed): read their names. (Those the
        // bounds leave out are filtered below: they belong to the rest.)
        var late: [Int64] = []
        let renamed = try snapshot.renamedEntries()
        late += renamed.filter { matchesName(SearchText.fold($0.name), raw: $0.name, query) }.map(\.id)
        var after = try snapshot.indexedThrough()
        while true {
            try check()
            let tail = try snapshot.unindexedEntries(after: after, limit: 50_000)
            guard let last = tail.last else { break }
            after = last.id
            late += tail.filter { matchesName(SearchText.fold($0.name), raw: $0.name, query) }.map(\.id)
        }
        try check()
        candidates += try confirm(late.filter { seen.insert($0).inserted }, query, idf: idf, folders: nil)
        // The head is defined by the bounds alone, whatever else was read on the way.
        candidates = candidates.filter { bounds.holds($0) }
        return Head(candidates: candidates, notes: notes, bounds: bounds, idf: idf, moved: movedWords)
    }

    /// The matches outside the head, newest first, below the id `before`: `need` of them at most. Names
    /// below `bounds.name` (but not exact or prefix matches the head keeps), and entries matched through the
    /// names of the folders above them (at any id).
    ///
    /// One page reads at most 200,000 names, or `candidateLimit * 4` postings or children per source: when a
    /// source stops there, `floor` is the id it read down to, the candidates are those at or above it, and the
    /// next page goes on below.
    func rest(before: Int64, bounds: HeadBounds, moved: [String]?, need: Int) throws
        -> (candidates: [SearchCandidate], floor: Int64?)
    {
        guard need > 0 else { return ([], nil) }
        var floor: Int64?
        let (query, _, _) = try effectiveQuery(moved: moved)
        let idf = [Double](repeating: 1, count: query.words.count + query.phrases.flatMap { $0 }.count)
        var found: [Int64: SearchCandidate] = [:]
        // Names below the bound.
        if bounds.name > 0 {
            let ceiling = min(before, bounds.name)
            let phraseWords = query.phrases.flatMap { $0 }
            let grams =
                (query.words + phraseWords).flatMap(SearchGrams.wordGrams)
                + (query.substrings + query.inside).flatMap(SearchGrams.substringGrams)
            var cursor = ceiling
            var named: [SearchCandidate] = []
            var scanned = 0
            while named.count < need {
                if scanned >= (grams.isEmpty ? 200_000 : candidateLimit * 4) {
                    floor = cursor
                    break
                }
                try check()
                let window: [Int64]
                let full: Bool
                if !grams.isEmpty {
                    window = try snapshot.postingMatches(grams, limit: candidateLimit, before: cursor)
                    full = window.count == candidateLimit
                    scanned += window.count
                    guard let last = window.last else { break }
                    cursor = last
                } else {
                    let rows = try snapshot.indexedEntries(before: cursor, limit: 20_000)
                    full = rows.count == 20_000
                    scanned += rows.count
                    guard let last = rows.last else { break }
                    cursor = last.id
                    window = rows.filter {
                        !cannotHold($0.name, query) && matchesName(SearchText.fold($0.name), raw: $0.name, query)
                    }.map(\.id)
                }
                named += try confirm(window, query, idf: idf, folders: nil).filter { !bounds.holds($0) }
                if !full { break }
            }
            // Entries the search index has not caught up with (renamed, or new): by their names.
            let renamed = try snapshot.renamedEntries().filter { $0.id < ceiling }
            var late = renamed.filter { matchesName(SearchText.fold($0.name), raw: $0.name, query) }.map(\.id)
            var after = try snapshot.indexedThrough()
            while after < ceiling {
                try check()
                let tail = try snapshot.unindexedEntries(after: after, limit: 50_000).filter { $0.id < ceiling }
                guard let last = tail.last else { break }
                after = last.id
                late += tail.filter { matchesName(SearchText.fold($0.name), raw: $0.name, query) }.map(\.id)
                if tail.count < 50_000 { break }
            }
            named += try confirm(late, query, idf: idf, folders: nil).filter { !bounds.holds($0) }
            for c in named { found[c.row.id] = c }
        }
        // Entries below folders whose names hold the words.
        if !query.words.isEmpty {
            try check()
            let folders = FolderCoverage(try snapshot.folders(), query)
            // Each source reads a window at a time (newest first) until `need` of its entries match through
            // their folders (filters and names leave some out), but a bounded amount per page; one that stopped
            // early sets the floor (the page keeps what is at or above it; the next goes on below).
            var ids: [Int64] = []
            func read(budget: Int, window size: Int, _ next: (Int64) throws -> [Int64]) throws {
                var below = before
                var (kept, read) = (0, 0)
                while kept < need {
                    try check()
                    if read >= budget {
                        floor = max(floor ?? .min, below)
                        return
                    }
                    let window = try next(below)
                    guard let last = window.last else { return }
                    below = last
                    read += window.count
                    let confirmed = try confirm(window, query, idf: idf, folders: folders).filter { $0.tier == .path }
                    kept += confirmed.count
                    ids += confirmed.map(\.row.id)
                    if window.count < size { return }
                }
            }
            let size = max(need, 256)
            try read(budget: candidateLimit * 4, window: size) {
                try snapshot.children(of: folders.complete, before: $0, limit: size)
            }
            for missing in folders.missingMasks.prefix(8) {
                let words = query.words.enumerated().filter { missing & (1 << UInt64($0.offset)) != 0 }.map(\.element)
                let grams = words.flatMap(SearchGrams.wordGrams)
                try read(budget: candidateLimit, window: candidateLimit) {
                    try snapshot.postingMatches(grams, limit: candidateLimit, before: $0)
                }
            }
            let known = Set(found.keys)
            for c in try confirm(Array(Set(ids)).filter { !known.contains($0) }, query, idf: idf, folders: folders)
            where c.tier == .path {
                found[c.row.id] = c
            }
        }
        let kept = found.values.filter { $0.row.id >= (floor ?? .min) }.sorted { $0.row.id > $1.row.id }
        return (Array(kept.prefix(need)), floor)
    }

    /// Rows of the candidates that pass the filters and really match; each with its tier.
    func confirm(_ ids: [Int64], _ query: SearchQuery, idf: [Double], folders: FolderCoverage?) throws
        -> [SearchCandidate]
    {
        var result: [SearchCandidate] = []
        let text = query.foldedText
        for row in try snapshot.rows(ids, filters: filters) {
            let folded = SearchText.fold(row.name)
            let words = SearchText.words(folded)
            if !query.excluded.isEmpty && excludedByName(words) { continue }
            if let folders, let parent = row.parentID, folders.excludedBelow(parent) { continue }
            let tier: MatchTier
            if matchesWithPath(words, folded, raw: row.name, query, pathMask: 0) {
                let stem = folded.lastIndex(of: ".").map { String(folded[..<$0]) } ?? folded
                if !text.isEmpty && (folded == text || stem == text) && query.substrings.isEmpty {
                    tier = .exact
                } else if !text.isEmpty && folded.hasPrefix(text) && query.substrings.isEmpty {
                    tier = .prefix
                } else {
                    tier = .word
                }
            } else if let folders, let parent = row.parentID,
                matchesWithPath(words, folded, raw: row.name, query, pathMask: folders.mask(of: parent))
            {
                tier = .path
            } else {
                continue
            }
            result.append(SearchCandidate(row: row, tier: tier, nameWords: words, idf: idf))
        }
        return result
    }

    func excludedByName(_ words: [String]) -> Bool {
        query.excluded.contains { Self.hasSequence(words, $0) }
    }

    /// Whether a name plainly cannot match, before it is folded: an ASCII name folds to ASCII, so it holds no
    /// term with other characters (a CJK query read against mostly ASCII names).
    func cannotHold(_ raw: [UInt8], _ query: SearchQuery) -> Bool {
        guard query.inside.contains(where: { !$0.utf8.allSatisfy { $0 < 0x80 } }) else { return false }
        return raw.allSatisfy { $0 < 0x80 }
    }

    /// Every term matches the name itself.
    func matchesName(_ folded: String, raw: [UInt8], _ query: SearchQuery) -> Bool {
        matchesWithPath(SearchText.words(folded), folded, raw: raw, query, pathMask: 0)
    }

    /// Whether a name holds a lower-cased substring, case ignored (bytes compared directly for ASCII names).
    static func contains(_ name: [UInt8], lowercased substring: String) -> Bool {
        let needle = Array(substring.utf8)
        guard !needle.isEmpty else { return true }
        if name.allSatisfy({ $0 < 0x80 }) && needle.allSatisfy({ $0 < 0x80 }) {
            guard name.count >= needle.count else { return false }
            outer: for start in 0...(name.count - needle.count) {
                for k in 0..<needle.count {
                    var b = name[start + k]
                    if b >= 0x41 && b <= 0x5A { b += 0x20 }
                    if b != needle[k] { continue outer }
                }
                return true
            }
            return false
        }
        return String(decoding: name, as: UTF8.self).lowercased().contains(substring)
    }

    /// Every term matches the name or (words only) a folder above it.
    func matchesWithPath(_ words: [String], _ folded: String, raw: [UInt8], _ query: SearchQuery, pathMask: UInt64)
        -> Bool
    {
        for (i, word) in query.words.enumerated()
        where pathMask & (1 << UInt64(i)) == 0 && !words.contains(where: { $0.hasPrefix(word) }) {
            return false
        }
        for phrase in query.phrases where !Self.hasSequence(words, phrase) { return false }
        for substring in query.substrings where !Self.contains(raw, lowercased: substring) { return false }
        if !query.inside.isEmpty {
            // An ASCII name folds to ASCII: it cannot hold a term with other characters (most names, read fast).
            let asciiName = raw.allSatisfy { $0 < 0x80 }
            for text in query.inside {
                if asciiName && !text.utf8.allSatisfy({ $0 < 0x80 }) { return false }
                if !Self.contains(folded, scalars: text) { return false }
            }
        }
        return true
    }

    /// Whether the folded name holds `text` as a run of Unicode scalars (an emoji found inside its
    /// skin-toned forms; a combining mark is its own scalar).
    static func contains(_ folded: String, scalars text: String) -> Bool {
        let needle = Array(text.unicodeScalars)
        guard !needle.isEmpty else { return true }
        let hay = Array(folded.unicodeScalars)
        guard hay.count >= needle.count else { return false }
        outer: for start in 0...(hay.count - needle.count) {
            for k in 0..<needle.count where hay[start + k] != needle[k] { continue outer }
            return true
        }
        return false
    }

    /// `sequence` appears in `words` consecutively (its last word as a prefix).
    static func hasSequence(_ words: [String], _ sequence: [String]) -> Bool {
        guard !sequence.isEmpty, words.count >= sequence.count else { return false }
        for start in 0...(words.count - sequence.count) {
            var ok = true
            for (k, word) in sequence.enumerated() {
                let candidate = words[start + k]
                if k == sequence.count - 1 ? !candidate.hasPrefix(word) : candidate != word {
                    ok = false
                    break
                }
            }
            if ok { return true }
        }
        return false
    }
}

/// Which query words each folder's path (its name and its ancestors') holds, as bit masks.
struct FolderCoverage {
    private var own: [Int64: (parent: Int64?, mask: UInt64, excluded: Bool)] = [:]
    private var paths: [Int64: (mask: UInt64, excluded: Bool)] = [:]
    let all: UInt64
    /// Folders whose path holds every word.
    private(set) var complete: [Int64] = []
    /// The sets of words some folders' paths lack, most common first.
    private(set) var missingMasks: [UInt64] = []

    init(_ folders: [(id: Int64, parent: Int64?, name: [UInt8])], _ query: SearchQuery) {
        let words = Array(query.words.prefix(64))
        all = words.count == 64 ? .max : (1 << UInt64(words.count)) - 1
        for folder in folders {
            let nameWords = SearchText.words(SearchText.fold(folder.name))
            var mask: UInt64 = 0
            for (i, word) in words.enumerated() where nameWords.contains(where: { $0.hasPrefix(word) }) {
                mask |= 1 << UInt64(i)
            }
            let excluded = query.excluded.contains { Stage1.hasSequence(nameWords, $0) }
            own[folder.id] = (folder.parent, mask, excluded)
        }
        var counts: [UInt64: Int] = [:]
        for folder in folders {
            let (mask, _) = path(folder.id)
            if mask == all {
                complete.append(folder.id)
            } else if mask != 0 {
                counts[all & ~mask, default: 0] += 1
            }
        }
        missingMasks = counts.sorted { $0.value > $1.value }.map(\.key)
    }

    private mutating func path(_ id: Int64) -> (UInt64, Bool) {
        if let known = paths[id] { return (known.mask, known.excluded) }
        var chain: [Int64] = []
        var current: Int64? = id
        var mask: UInt64 = 0, excluded = false
        while let at = current {
            if let known = paths[at] {
                mask = known.mask
                excluded = known.excluded
                break
            }
            guard let entry = own[at] else { break }
            chain.append(at)
            current = entry.parent
        }
        for at in chain.reversed() {
            let entry = own[at]!
            mask |= entry.mask
            excluded = excluded || entry.excluded
            paths[at] = (mask, excluded)
        }
        return (mask, excluded)
    }

    func mask(of folder: Int64) -> UInt64 { paths[folder]?.mask ?? 0 }
    func excludedBelow(_ folder: Int64) -> Bool { paths[folder]?.excluded ?? false }
}
