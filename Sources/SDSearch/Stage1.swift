import Foundation
import SDCore
import SDStore

/// The first stage of a search, inside one read snapshot: candidates from the indexes, rows through the
/// filters, every candidate confirmed against its real name (and its folders' names), and its tier.
struct Stage1 {
    let snapshot: SearchSnapshot
    var request: SearchRequest
    let filters: SearchFilters
    let want: Int
    let candidateLimit: Int
    let cancelled: () -> Bool
    /// Whether a query whose words match no name is tried again with them as substrings.
    var substringFallback = true

    var query: SearchQuery { request.query }

    func check() throws { if cancelled() { throw CancellationError() } }

    func run() throws -> (candidates: [SearchCandidate], notes: [String], more: Bool) {
        var notes = query.notes
        if !query.hasText {
            let rows = try snapshot.filtered(filters, sort: request.sort, offset: 0, limit: want + 1)
            let kept =
                query.excluded.isEmpty
                ? rows : rows.filter { !excludedByName(SearchText.words(SearchText.fold($0.name))) }
            let candidates = kept.prefix(want).map {
                SearchCandidate(row: $0, tier: .word, nameWords: [], idf: [])
            }
            return (Array(candidates), notes, rows.count > want)
        }
        var query = self.query
        // IDF of the query's words, in the order the reranker reads them (words, then phrases' words).
        let frequencies = try snapshot.documentFrequencies(query.words)
        let phraseWords = query.phrases.flatMap { $0 }
        let phraseFrequencies = try snapshot.documentFrequencies(phraseWords)
        let total = Double(frequencies.total)
        let idf = (frequencies.counts + phraseFrequencies.counts).map { df in
            log(1 + (total - Double(df) + 0.5) / (Double(df) + 0.5))
        }
        // Words no name has (as a word start) are looked for inside names instead.
        if try snapshot.indexedThrough() > 0 {
            for (word, count) in zip(query.words, frequencies.counts) where count == 0 && word.count >= 3 {
                query.words.removeAll { $0 == word }
                query.substrings.append(word)
                notes.append("no name has a word starting with '\(word)': searched inside names instead")
            }
        }
        var ids: [Int64] = []
        var seen: Set<Int64> = []
        var more = false
        func add(_ found: [Int64], limit: Int) {
            if found.count >= limit { more = true }
            for id in found where seen.insert(id).inserted { ids.append(id) }
        }
        var candidates: [SearchCandidate] = []
        // Exact names and name prefixes first, whatever their age (a name's start and end are grams too).
        let folded = query.foldedText
        if !folded.isEmpty && query.substrings.isEmpty {
            for grams in SearchGrams.exactGrams(folded) {
                add(try snapshot.postingMatches(grams, limit: 200), limit: 200)
            }
            let grams = SearchGrams.prefixGrams(folded)
            add(try snapshot.postingMatches(grams, limit: max(want, 100)), limit: max(want, 100))
        }
        candidates += try confirm(ids, query, idf: idf, folders: nil)
        let grams =
            (query.words + phraseWords).flatMap(SearchGrams.wordGrams)
            + (query.substrings + query.inside).flatMap(SearchGrams.substringGrams)
        // Indexed names with every gram, newest first, a window at a time until enough are confirmed (the
        // grams give a superset). A query they cannot narrow (one letter, a two-letter substring) reads names.
        let enough = max(want * 2, 100)
        var before = Int64.max
        var scanned = 0
        // The first window is what a page needs; later ones (the first did not confirm enough) are larger.
        var windowSize = min(candidateLimit, enough + enough / 2)
        while candidates.count < enough {
            try check()
            let window: [Int64]
            // Ids the window read (postings matched, or names read when the grams cannot narrow).
            let read: Int
            if !grams.isEmpty {
                window = try snapshot.postingMatches(grams, limit: windowSize, before: before)
                read = window.count
                guard let last = window.last else { break }
                before = last
            } else {
                let rows = try snapshot.indexedEntries(before: before, limit: 20_000)
                read = rows.count
                guard let last = rows.last else { break }
                before = last.id
                window = rows.filter { matchesName(SearchText.fold($0.name), raw: $0.name, query) }.map(\.id)
            }
            let full = read == (grams.isEmpty ? 20_000 : windowSize)
            scanned += read
            let fresh = window.filter { seen.insert($0).inserted }
            candidates += try confirm(fresh, query, idf: idf, folders: nil)
            if !full { break }
            windowSize = candidateLimit
            if scanned >= (grams.isEmpty ? 200_000 : candidateLimit * 20) {
                more = true
                break
            }
            if candidates.count >= enough { more = true }
        }
        ids = []
        // Entries the search index has not caught up with yet (new, renamed): read their names.
        let renamed = try snapshot.renamedEntries()
        add(renamed.filter { matchesName(SearchText.fold($0.name), raw: $0.name, query) }.map(\.id), limit: .max)
        var after = try snapshot.indexedThrough()
        while true {
            try check()
            let tail = try snapshot.unindexedEntries(after: after, limit: 50_000)
            guard let last = tail.last else { break }
            after = last.id
            let matching = tail.filter { matchesName(SearchText.fold($0.name), raw: $0.name, query) }.map(\.id)
            add(matching, limit: .max)
        }
        try check()
        candidates += try confirm(ids, query, idf: idf, folders: nil)
        // Words found in folders' names: entries below them, when the name tiers do not fill the page.
        if candidates.count < want && !query.words.isEmpty {
            let folders = FolderCoverage(try snapshot.folders(), query)
            var pathIDs: [Int64] = []
            pathIDs += try snapshot.children(of: folders.complete, limit: candidateLimit)
            for missing in folders.missingMasks.prefix(8) {
                let words = query.words.enumerated().filter { missing & (1 << UInt64($0.offset)) != 0 }.map(\.element)
                pathIDs += try snapshot.postingMatches(words.flatMap(SearchGrams.wordGrams), limit: candidateLimit)
            }
            try check()
            let known = Set(candidates.map(\.row.id))
            candidates += try confirm(pathIDs.filter { !known.contains($0) }, query, idf: idf, folders: folders)
            if pathIDs.count >= candidateLimit { more = true }
        }
        if candidates.isEmpty && substringFallback && query.substrings.isEmpty && query.phrases.isEmpty
            && !query.words.isEmpty && query.words.allSatisfy({ $0.count >= 3 })
        {
            var again = self
            again.substringFallback = false
            again.request.query.substrings = query.words
            again.request.query.words = []
            let retry = try again.run()
            let note =
                "no name has the words \(query.words.map { "'\($0)'" }.joined(separator: ", ")): searched inside names"
            return (retry.candidates, retry.notes + (retry.candidates.isEmpty ? [] : [note]), retry.more)
        }
        return (candidates, notes, more)
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
        for text in query.inside where !Self.contains(folded, scalars: text) { return false }
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
