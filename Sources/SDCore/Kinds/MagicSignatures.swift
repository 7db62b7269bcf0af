/// Magic-byte signatures: the first bytes of a file (up to `FileKinds.headerLength`) name its format.
///
/// Each match gives a `family` (the container, compared with the extension table's family to confirm or
/// contradict an extension) and the kind. `textual` signatures (HTML, XML, PEM, vCard...) are text, so they
/// never contradict an extension of the text family.
struct MagicMatch: Sendable {
    var family: String
    var category: FileCategory
    var mime: String
    var textual = false
}

struct Header {
    let bytes: UnsafeRawBufferPointer

    var count: Int { bytes.count }

    subscript(_ i: Int) -> UInt8 { i < bytes.count ? bytes[i] : 0 }

    func has(_ prefix: [UInt8], at offset: Int = 0) -> Bool {
        guard offset + prefix.count <= bytes.count else { return false }
        for (i, b) in prefix.enumerated() where bytes[offset + i] != b { return false }
        return true
    }

    func has(_ ascii: String, at offset: Int = 0) -> Bool { has(Array(ascii.utf8), at: offset) }

    /// Case-insensitive ASCII prefix after skipping a UTF-8 byte order mark and leading whitespace.
    func startsText(with ascii: String) -> Bool {
        var i = has([0xEF, 0xBB, 0xBF]) ? 3 : 0
        while i < count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[i]) { i += 1 }
        let want = Array(ascii.lowercased().utf8)
        guard i + want.count <= count else { return false }
        for (j, w) in want.enumerated() {
            var b = bytes[i + j]
            if b >= 0x41 && b <= 0x5A { b += 0x20 }
            if b != w { return false }
        }
        return true
    }

    func contains(_ ascii: String, within limit: Int) -> Bool {
        let needle = Array(ascii.utf8)
        let end = min(limit, count) - needle.count
        guard end >= 0 else { return false }
        for start in 0...end where has(needle, at: start) { return true }
        return false
    }

    func uint32BE(_ at: Int) -> UInt32 {
        UInt32(self[at]) << 24 | UInt32(self[at + 1]) << 16 | UInt32(self[at + 2]) << 8 | UInt32(self[at + 3])
    }

    func uint32LE(_ at: Int) -> UInt32 {
        UInt32(self[at]) | UInt32(self[at + 1]) << 8 | UInt32(self[at + 2]) << 16 | UInt32(self[at + 3]) << 24
    }
}

enum MagicSignatures {
    /// The format named by `header`, or nil when no signature matches.
    /// The binary families a signature identifies: a file named for one of them that has no signature and
    /// reads as text is text (a `.png` holding notes is not an image).
    static let binaryFamilies: Set<String> = [
        "7z", "aac", "age", "aiff", "amr", "ar", "asf", "blend", "bmp", "bzip2", "cab", "class", "djvu", "ebml", "elf",
        "exr", "fbx", "flac", "flv", "ftyp", "gif", "glb", "gzip", "ico", "jp2", "jpeg", "jxl", "kdbx", "lnk", "luks",
        "lz4", "macho", "midi", "mobi", "mp3", "mpeg", "mpegts", "ogg", "ole", "otf", "parquet", "pdf", "pe", "ply",
        "png", "psd", "qoi", "rar", "riff", "rpm", "sqlite", "tar", "tiff", "ttc", "ttf", "wasm", "woff", "woff2",
        "xcf", "xz", "zip", "zstd",
    ]

    static func match(_ h: Header) -> MagicMatch? {
        guard h.count >= 2 else { return nil }
        // Images
        if h.has([0xFF, 0xD8, 0xFF]) { return MagicMatch(family: "jpeg", category: .image, mime: "image/jpeg") }
        if h.has([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) {
            return MagicMatch(family: "png", category: .image, mime: "image/png")
        }
        if h.has("GIF87a") || h.has("GIF89a") { return MagicMatch(family: "gif", category: .image, mime: "image/gif") }
        if h.has("II*\0") || h.has("MM\0*") { return MagicMatch(family: "tiff", category: .image, mime: "image/tiff") }
        if h.has("BM") && h.count >= 14 && h[6] == 0 && h[7] == 0 && h[8] == 0 && h[9] == 0 {
            return MagicMatch(family: "bmp", category: .image, mime: "image/bmp")
        }
        if (h.has([0, 0, 1, 0]) || h.has([0, 0, 2, 0])) && h.count >= 6 && (h[4] | h[5]) != 0 && h[5] == 0 {
            return MagicMatch(family: "ico", category: .image, mime: "image/vnd.microsoft.icon")
        }
        if h.has("8BPS") { return MagicMatch(family: "psd", category: .image, mime: "image/vnd.adobe.photoshop") }
        if h.has([0xFF, 0x0A]) || h.has([0, 0, 0, 0x0C, 0x4A, 0x58, 0x4C, 0x20, 0x0D, 0x0A, 0x87, 0x0A]) {
            return MagicMatch(family: "jxl", category: .image, mime: "image/jxl")
        }
        if h.has([0, 0, 0, 0x0C, 0x6A, 0x50, 0x20, 0x20, 0x0D, 0x0A, 0x87, 0x0A]) {
            return MagicMatch(family: "jp2", category: .image, mime: "image/jp2")
        }
        if h.has("gimp xcf") { return MagicMatch(family: "xcf", category: .image, mime: "image/x-xcf") }
        if h.has([0x76, 0x2F, 0x31, 0x01]) { return MagicMatch(family: "exr", category: .image, mime: "image/x-exr") }
        if h.has("qoif") { return MagicMatch(family: "qoi", category: .image, mime: "image/qoi") }
        // Containers shared by several formats
        if h.has("ftyp", at: 4) { return ftyp(h) }
        if h.has("RIFF") {
            if h.has("WEBP", at: 8) { return MagicMatch(family: "riff", category: .image, mime: "image/webp") }
            if h.has("WAVE", at: 8) { return MagicMatch(family: "riff", category: .audio, mime: "audio/wav") }
            if h.has("AVI ", at: 8) { return MagicMatch(family: "riff", category: .video, mime: "video/x-msvideo") }
            return MagicMatch(family: "riff", category: .binary, mime: "application/x-riff")
        }
        if h.has([0x1A, 0x45, 0xDF, 0xA3]) {
            return h.contains("webm", within: 64)
                ? MagicMatch(family: "ebml", category: .video, mime: "video/webm")
                : MagicMatch(family: "ebml", category: .video, mime: "video/x-matroska")
        }
        if h.has("OggS") {
            if h.contains("OpusHead", within: 64) {
                return MagicMatch(family: "ogg", category: .audio, mime: "audio/opus")
            }
            if h.contains("theora", within: 64) {
                return MagicMatch(family: "ogg", category: .video, mime: "video/ogg")
            }
            return MagicMatch(family: "ogg", category: .audio, mime: "audio/ogg")
        }
        if h.has([0x50, 0x4B, 0x03, 0x04]) || h.has([0x50, 0x4B, 0x05, 0x06]) { return zip(h) }
        if h.has([0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]) {
            return MagicMatch(family: "ole", category: .document, mime: "application/x-ole-storage")
        }
        // Video and audio
        if h.has([0x30, 0x26, 0xB2, 0x75, 0x8E, 0x66, 0xCF, 0x11]) {
            return MagicMatch(family: "asf", category: .video, mime: "video/x-ms-asf")
        }
        if h.has("FLV\u{01}") { return MagicMatch(family: "flv", category: .video, mime: "video/x-flv") }
        if h.has([0, 0, 1, 0xBA]) || h.has([0, 0, 1, 0xB3]) {
            return MagicMatch(family: "mpeg", category: .video, mime: "video/mpeg")
        }
        if h[0] == 0x47 && h.count > 188 && h[188] == 0x47 {
            return MagicMatch(family: "mpegts", category: .video, mime: "video/mp2t")
        }
        if h.has("ID3") || (h[0] == 0xFF && (h[1] == 0xFB || h[1] == 0xF3 || h[1] == 0xF2)) {
            return MagicMatch(family: "mp3", category: .audio, mime: "audio/mpeg")
        }
        if h[0] == 0xFF && (h[1] == 0xF1 || h[1] == 0xF9) {
            return MagicMatch(family: "aac", category: .audio, mime: "audio/aac")
        }
        if h.has("fLaC") { return MagicMatch(family: "flac", category: .audio, mime: "audio/flac") }
        if h.has("FORM") && (h.has("AIFF", at: 8) || h.has("AIFC", at: 8)) {
            return MagicMatch(family: "aiff", category: .audio, mime: "audio/aiff")
        }
        if h.has("MThd") { return MagicMatch(family: "midi", category: .audio, mime: "audio/midi") }
        if h.has("#!AMR") { return MagicMatch(family: "amr", category: .audio, mime: "audio/amr") }
        // Documents and books
        if h.has("%PDF-") { return MagicMatch(family: "pdf", category: .document, mime: "application/pdf") }
        if h.has("%!PS") { return MagicMatch(family: "ps", category: .document, mime: "application/postscript") }
        if h.has("{\\rtf") { return MagicMatch(family: "rtf", category: .document, mime: "application/rtf") }
        if h.has("BOOKMOBI", at: 60) {
            return MagicMatch(family: "mobi", category: .book, mime: "application/x-mobipocket-ebook")
        }
        if h.has("AT&TFORM") { return MagicMatch(family: "djvu", category: .book, mime: "image/vnd.djvu") }
        // Archives
        if h.has([0x1F, 0x8B, 0x08]) {
            return MagicMatch(family: "gzip", category: .archive, mime: "application/gzip")
        }
        if h.has("BZh") && h[3] >= 0x31 && h[3] <= 0x39 {
            return MagicMatch(family: "bzip2", category: .archive, mime: "application/x-bzip2")
        }
        if h.has([0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00]) {
            return MagicMatch(family: "xz", category: .archive, mime: "application/x-xz")
        }
        if h.has([0x28, 0xB5, 0x2F, 0xFD]) {
            return MagicMatch(family: "zstd", category: .archive, mime: "application/zstd")
        }
        if h.has([0x04, 0x22, 0x4D, 0x18]) {
            return MagicMatch(family: "lz4", category: .archive, mime: "application/x-lz4")
        }
        if h.has([0x37, 0x7A, 0xBC, 0xAF, 0x27, 0x1C]) {
            return MagicMatch(family: "7z", category: .archive, mime: "application/x-7z-compressed")
        }
        if h.has("Rar!\u{1A}\u{07}") {
            return MagicMatch(family: "rar", category: .archive, mime: "application/vnd.rar")
        }
        if h.has("MSCF") {
            return MagicMatch(family: "cab", category: .archive, mime: "application/vnd.ms-cab-compressed")
        }
        if h.has("ustar", at: 257) { return MagicMatch(family: "tar", category: .archive, mime: "application/x-tar") }
        // Databases
        if h.has("SQLite format 3\0") {
            return MagicMatch(family: "sqlite", category: .database, mime: "application/vnd.sqlite3")
        }
        if h.has("PAR1") {
            return MagicMatch(family: "parquet", category: .database, mime: "application/vnd.apache.parquet")
        }
        // Executables and packages
        if h.has([0x7F, 0x45, 0x4C, 0x46]) { return elf(h) }
        if h.has([0xFE, 0xED, 0xFA, 0xCE]) || h.has([0xFE, 0xED, 0xFA, 0xCF]) || h.has([0xCE, 0xFA, 0xED, 0xFE])
            || h.has([0xCF, 0xFA, 0xED, 0xFE])
        {
            return MagicMatch(family: "macho", category: .executable, mime: "application/x-mach-binary")
        }
        if h.has([0xCA, 0xFE, 0xBA, 0xBE]) {
            // Shared by Java classes and universal Mach-O binaries: a class file's version is >= 45, a fat
            // binary's architecture count is small.
            return h.uint32BE(4) >= 45
                ? MagicMatch(family: "class", category: .executable, mime: "application/java-vm")
                : MagicMatch(family: "macho", category: .executable, mime: "application/x-mach-binary")
        }
        if h.has("MZ") && h.count >= 64 {
            let peOffset = Int(h.uint32LE(60))
            if peOffset + 4 > h.count || h.has("PE\0\0", at: peOffset) {
                return MagicMatch(
                    family: "pe",
                    category: .executable,
                    mime: "application/vnd.microsoft.portable-executable"
                )
            }
        }
        if h.has([0x00, 0x61, 0x73, 0x6D]) {
            return MagicMatch(family: "wasm", category: .executable, mime: "application/wasm")
        }
        if h.has("!<arch>\n") {
            return h.has("debian-binary", at: 8)
                ? MagicMatch(family: "ar", category: .package, mime: "application/vnd.debian.binary-package")
                : MagicMatch(family: "ar", category: .binary, mime: "application/x-archive")
        }
        if h.has([0xED, 0xAB, 0xEE, 0xDB]) {
            return MagicMatch(family: "rpm", category: .package, mime: "application/x-rpm")
        }
        if h.has([0x4C, 0x00, 0x00, 0x00, 0x01, 0x14, 0x02, 0x00]) {
            return MagicMatch(family: "lnk", category: .shortcut, mime: "application/x-ms-shortcut")
        }
        // Fonts
        if h.has([0x00, 0x01, 0x00, 0x00]) && h.count >= 6 && h[4] == 0 && h[5] > 0 && h[5] < 64 {
            return MagicMatch(family: "ttf", category: .font, mime: "font/ttf")
        }
        if h.has("OTTO") { return MagicMatch(family: "otf", category: .font, mime: "font/otf") }
        if h.has("wOFF") { return MagicMatch(family: "woff", category: .font, mime: "font/woff") }
        if h.has("wOF2") { return MagicMatch(family: "woff2", category: .font, mime: "font/woff2") }
        if h.has("ttcf") { return MagicMatch(family: "ttc", category: .font, mime: "font/collection") }
        // Meshes
        if h.has("glTF") { return MagicMatch(family: "glb", category: .mesh, mime: "model/gltf-binary") }
        if h.has("ply\n") || h.has("ply\r\n") {
            return MagicMatch(family: "ply", category: .mesh, mime: "application/x-ply")
        }
        if h.has("Kaydara FBX Binary") {
            return MagicMatch(family: "fbx", category: .mesh, mime: "application/vnd.autodesk.fbx")
        }
        if h.has("BLENDER") { return MagicMatch(family: "blend", category: .mesh, mime: "application/x-blender") }
        // Encrypted containers
        if h.has("age-encryption.org/v1") {
            return MagicMatch(family: "age", category: .encrypted, mime: "application/x-age")
        }
        if h.has([0x03, 0xD9, 0xA2, 0x9A]) {
            return MagicMatch(family: "kdbx", category: .encrypted, mime: "application/x-keepass2")
        }
        if h.has("LUKS\u{BA}\u{BE}") || h.has([0x4C, 0x55, 0x4B, 0x53, 0xBA, 0xBE]) {
            return MagicMatch(family: "luks", category: .encrypted, mime: "application/x-luks")
        }
        return textual(h)
    }

    /// Signatures of text formats, checked after the binary ones.
    private static func textual(_ h: Header) -> MagicMatch? {
        if h.startsText(with: "-----BEGIN PGP MESSAGE") {
            return MagicMatch(family: "pem", category: .encrypted, mime: "application/pgp-encrypted", textual: true)
        }
        if h.startsText(with: "-----BEGIN CERTIFICATE") {
            return MagicMatch(family: "pem", category: .key, mime: "application/x-x509-ca-cert", textual: true)
        }
        if h.startsText(with: "-----BEGIN ") {
            return MagicMatch(family: "pem", category: .key, mime: "application/x-pem-file", textual: true)
        }
        if h.startsText(with: "ssh-ed25519 ") || h.startsText(with: "ssh-rsa ") || h.startsText(with: "ecdsa-sha2-") {
            return MagicMatch(family: "text", category: .key, mime: "text/plain", textual: true)
        }
        if h.startsText(with: "<!doctype html") || h.startsText(with: "<html") {
            return MagicMatch(family: "html", category: .web, mime: "text/html", textual: true)
        }
        if h.startsText(with: "<svg") || (h.startsText(with: "<?xml") && h.contains("<svg", within: 1024)) {
            return MagicMatch(family: "xml", category: .image, mime: "image/svg+xml", textual: true)
        }
        if h.startsText(with: "<?xml") {
            return MagicMatch(family: "xml", category: .config, mime: "application/xml", textual: true)
        }
        if h.startsText(with: "BEGIN:VCALENDAR") {
            return MagicMatch(family: "text", category: .calendar, mime: "text/calendar", textual: true)
        }
        if h.startsText(with: "BEGIN:VCARD") {
            return MagicMatch(family: "text", category: .contact, mime: "text/vcard", textual: true)
        }
        for field in ["Return-Path:", "Received:", "Delivered-To:", "MIME-Version:", "Message-ID:"]
        where h.startsText(with: field) {
            return MagicMatch(family: "text", category: .email, mime: "message/rfc822", textual: true)
        }
        if h.has("From ") && h.contains("\nFrom:", within: 1024) {
            return MagicMatch(family: "text", category: .email, mime: "application/mbox", textual: true)
        }
        if h.has("#!") { return shebang(h) }
        return nil
    }

    private static func shebang(_ h: Header) -> MagicMatch {
        let line = String(decoding: h.bytes.prefix(128).prefix { $0 != 0x0A }, as: UTF8.self)
        let mime: String =
            if line.contains("python") { "text/x-python" } else if line.contains("node") {
                "text/javascript"
            } else if line.contains("ruby") { "text/x-ruby" } else if line.contains("perl") { "text/x-perl" } else {
                "application/x-sh"
            }
        return MagicMatch(family: "text", category: .code, mime: mime, textual: true)
    }

    private static func ftyp(_ h: Header) -> MagicMatch {
        let brand = String(decoding: h.bytes[8..<min(12, h.count)], as: UTF8.self)
        switch brand {
        case "heic", "heix", "hevc", "heim", "heis", "hevm", "hevs", "mif1", "msf1":
            return MagicMatch(family: "ftyp", category: .image, mime: "image/heic")
        case "avif", "avis": return MagicMatch(family: "ftyp", category: .image, mime: "image/avif")
        case "crx ": return MagicMatch(family: "ftyp", category: .image, mime: "image/x-canon-cr3")
        case "qt  ": return MagicMatch(family: "ftyp", category: .video, mime: "video/quicktime")
        case "M4A ", "M4B ", "M4P ": return MagicMatch(family: "ftyp", category: .audio, mime: "audio/mp4")
        case _ where brand.hasPrefix("3g2"): return MagicMatch(family: "ftyp", category: .video, mime: "video/3gpp2")
        case _ where brand.hasPrefix("3g"): return MagicMatch(family: "ftyp", category: .video, mime: "video/3gpp")
        default: return MagicMatch(family: "ftyp", category: .video, mime: "video/mp4")
        }
    }

    /// Zip files: office documents, books, Java and Android packages are zips with a telling first member.
    private static func zip(_ h: Header) -> MagicMatch {
        let nameLength = Int(h[26]) | Int(h[27]) << 8
        let name = h.count >= 30 + nameLength ? String(decoding: h.bytes[30..<(30 + nameLength)], as: UTF8.self) : ""
        if name == "mimetype" {
            let start = 30 + nameLength + (Int(h[28]) | Int(h[29]) << 8)
            let types: [(String, FileCategory)] = [
                ("application/epub+zip", .book),
                ("application/vnd.oasis.opendocument.text", .document),
                ("application/vnd.oasis.opendocument.spreadsheet", .spreadsheet),
                ("application/vnd.oasis.opendocument.presentation", .presentation),
            ]
            for (mime, category) in types where h.has(mime, at: start) {
                return MagicMatch(family: "zip", category: category, mime: mime)
            }
        }
        if name.hasPrefix("word/") || h.contains("word/", within: h.count) && h.contains("[Content_Types]", within: 64)
        {
            return MagicMatch(
                family: "zip",
                category: .document,
                mime: "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
            )
        }
        if name.hasPrefix("xl/") || h.contains("xl/", within: h.count) && h.contains("[Content_Types]", within: 64) {
            return MagicMatch(
                family: "zip",
                category: .spreadsheet,
                mime: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
            )
        }
        if name.hasPrefix("ppt/") || h.contains("ppt/", within: h.count) && h.contains("[Content_Types]", within: 64) {
            return MagicMatch(
                family: "zip",
                category: .presentation,
                mime: "application/vnd.openxmlformats-officedocument.presentationml.presentation"
            )
        }
        if name.hasPrefix("META-INF/") {
            return MagicMatch(family: "zip", category: .package, mime: "application/java-archive")
        }
        if name == "AndroidManifest.xml" {
            return MagicMatch(family: "zip", category: .package, mime: "application/vnd.android.package-archive")
        }
        return MagicMatch(family: "zip", category: .archive, mime: "application/zip")
    }

    private static func elf(_ h: Header) -> MagicMatch {
        // e_type (16-bit at offset 16, in the file's byte order: EI_DATA 1 = little-endian).
        let type = h[5] == 2 ? Int(h[16]) << 8 | Int(h[17]) : Int(h[16]) | Int(h[17]) << 8
        switch type {
        case 1: return MagicMatch(family: "elf", category: .binary, mime: "application/x-object")
        case 3: return MagicMatch(family: "elf", category: .executable, mime: "application/x-sharedlib")
        case 4: return MagicMatch(family: "elf", category: .binary, mime: "application/x-coredump")
        default: return MagicMatch(family: "elf", category: .executable, mime: "application/x-executable")
        }
    }
}
