import Foundation
import SDCore
import SDTestSupport
import Testing

struct FileKindsTests {
    struct Sample: CustomTestStringConvertible, Sendable {
        let label: String
        let bytes: [UInt8]
        let category: FileCategory
        let mime: String
        var testDescription: String { label }
    }

    static func b(_ s: String) -> [UInt8] { Array(s.utf8) }
    static func pad(_ bytes: [UInt8], to n: Int = 64) -> [UInt8] {
        bytes + [UInt8](repeating: 0, count: max(0, n - bytes.count))
    }
    static func le32(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }

    /// Headers as the formats' own tools write them (taken from files made by libjpeg, libpng, ffmpeg, zip...).
    static let samples: [Sample] = [
        Sample(
            label: "jpeg",
            bytes: [0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10] + b("JFIF\0"),
            category: .image,
            mime: "image/jpeg"
        ),
        Sample(
            label: "png",
            bytes: [0x89] + b("PNG\r\n\u{1A}\n") + [0, 0, 0, 13] + b("IHDR"),
            category: .image,
            mime: "image/png"
        ),
        Sample(label: "gif", bytes: b("GIF89a") + [1, 0, 1, 0, 0x80, 0, 0], category: .image, mime: "image/gif"),
        Sample(label: "webp", bytes: b("RIFF") + le32(100) + b("WEBPVP8 "), category: .image, mime: "image/webp"),
        Sample(
            label: "bmp",
            bytes: b("BM") + le32(70) + [0, 0, 0, 0] + le32(54) + le32(40),
            category: .image,
            mime: "image/bmp"
        ),
        Sample(label: "tiff-le", bytes: b("II*\0") + le32(8), category: .image, mime: "image/tiff"),
        Sample(label: "tiff-be", bytes: b("MM\0*") + [0, 0, 0, 8], category: .image, mime: "image/tiff"),
        Sample(
            label: "ico",
            bytes: [0, 0, 1, 0, 1, 0, 16, 16, 0, 0],
            category: .image,
            mime: "image/vnd.microsoft.icon"
        ),
        Sample(
            label: "heic",
            bytes: [0, 0, 0, 0x18] + b("ftypheic\0\0\0\0mif1heic"),
            category: .image,
            mime: "image/heic"
        ),
        Sample(
            label: "avif",
            bytes: [0, 0, 0, 0x1C] + b("ftypavif\0\0\0\0avifmif1"),
            category: .image,
            mime: "image/avif"
        ),
        Sample(
            label: "psd",
            bytes: b("8BPS") + [0, 1, 0, 0, 0, 0, 0, 0],
            category: .image,
            mime: "image/vnd.adobe.photoshop"
        ),
        Sample(
            label: "jxl",
            bytes: [0, 0, 0, 0x0C, 0x4A, 0x58, 0x4C, 0x20, 0x0D, 0x0A, 0x87, 0x0A],
            category: .image,
            mime: "image/jxl"
        ),
        Sample(
            label: "jp2",
            bytes: [0, 0, 0, 0x0C, 0x6A, 0x50, 0x20, 0x20, 0x0D, 0x0A, 0x87, 0x0A],
            category: .image,
            mime: "image/jp2"
        ),
        Sample(
            label: "svg",
            bytes: b("<?xml version=\"1.0\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\"/>"),
            category: .image,
            mime: "image/svg+xml"
        ),
        Sample(label: "exr", bytes: [0x76, 0x2F, 0x31, 0x01, 2, 0, 0, 0], category: .image, mime: "image/x-exr"),
        Sample(
            label: "mp4",
            bytes: [0, 0, 0, 0x20] + b("ftypisom\0\0\u{02}\0isomiso2avc1mp41"),
            category: .video,
            mime: "video/mp4"
        ),
        Sample(
            label: "mov",
            bytes: [0, 0, 0, 0x14] + b("ftypqt  \0\0\0\0qt  "),
            category: .video,
            mime: "video/quicktime"
        ),
        Sample(
            label: "mkv",
            bytes: [0x1A, 0x45, 0xDF, 0xA3, 0x9F, 0x42, 0x86, 0x81, 1] + b("B\u{82}\u{88}matroska"),
            category: .video,
            mime: "video/x-matroska"
        ),
        Sample(
            label: "webm",
            bytes: [0x1A, 0x45, 0xDF, 0xA3, 0x9F, 0x42, 0x86, 0x81, 1] + b("B\u{82}\u{84}webm"),
            category: .video,
            mime: "video/webm"
        ),
        Sample(label: "avi", bytes: b("RIFF") + le32(1000) + b("AVI LIST"), category: .video, mime: "video/x-msvideo"),
        Sample(
            label: "asf",
            bytes: [0x30, 0x26, 0xB2, 0x75, 0x8E, 0x66, 0xCF, 0x11, 0xA6, 0xD9],
            category: .video,
            mime: "video/x-ms-asf"
        ),
        Sample(label: "flv", bytes: b("FLV") + [1, 5, 0, 0, 0, 9], category: .video, mime: "video/x-flv"),
        Sample(label: "mpeg-ps", bytes: [0, 0, 1, 0xBA, 0x44, 0, 4, 0, 4, 1], category: .video, mime: "video/mpeg"),
        Sample(
            label: "mpeg-ts",
            bytes: [0x47, 0x40, 0x00, 0x10] + [UInt8](repeating: 0xFF, count: 184) + [0x47, 0x40, 0x11, 0x10],
            category: .video,
            mime: "video/mp2t"
        ),
        Sample(label: "mp3-id3", bytes: b("ID3") + [4, 0, 0, 0, 0, 0x23, 0x76], category: .audio, mime: "audio/mpeg"),
        Sample(label: "mp3-frame", bytes: [0xFF, 0xFB, 0x90, 0x64, 0x00], category: .audio, mime: "audio/mpeg"),
        Sample(
            label: "aac-adts",
            bytes: [0xFF, 0xF1, 0x50, 0x80, 0x02, 0x1F, 0xFC],
            category: .audio,
            mime: "audio/aac"
        ),
        Sample(label: "flac", bytes: b("fLaC") + [0, 0, 0, 0x22], category: .audio, mime: "audio/flac"),
        Sample(label: "wav", bytes: b("RIFF") + le32(36) + b("WAVEfmt "), category: .audio, mime: "audio/wav"),
        Sample(
            label: "ogg-vorbis",
            bytes: b("OggS\0\u{02}") + [UInt8](repeating: 0, count: 22) + [1] + b("vorbis"),
            category: .audio,
            mime: "audio/ogg"
        ),
        Sample(
            label: "opus",
            bytes: b("OggS\0\u{02}") + [UInt8](repeating: 0, count: 22) + b("OpusHead"),
            category: .audio,
            mime: "audio/opus"
        ),
        Sample(
            label: "m4a",
            bytes: [0, 0, 0, 0x20] + b("ftypM4A \0\0\u{02}\0M4A mp42isom"),
            category: .audio,
            mime: "audio/mp4"
        ),
        Sample(
            label: "aiff",
            bytes: b("FORM") + [0, 0, 0x10, 0] + b("AIFFCOMM"),
            category: .audio,
            mime: "audio/aiff"
        ),
        Sample(label: "midi", bytes: b("MThd") + [0, 0, 0, 6, 0, 1], category: .audio, mime: "audio/midi"),
        Sample(label: "pdf", bytes: b("%PDF-1.7\n%\u{E2}\u{E3}"), category: .document, mime: "application/pdf"),
        Sample(label: "postscript", bytes: b("%!PS-Adobe-3.0\n"), category: .document, mime: "application/postscript"),
        Sample(label: "rtf", bytes: b("{\\rtf1\\ansi\\deff0"), category: .document, mime: "application/rtf"),
        Sample(
            label: "ole2",
            bytes: [0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1, 0, 0],
            category: .document,
            mime: "application/x-ole-storage"
        ),
        Sample(
            label: "epub",
            bytes: b("PK\u{03}\u{04}") + [0x0A, 0, 0, 0, 0, 0] + [UInt8](repeating: 0, count: 16) + [8, 0, 0, 0]
                + b("mimetypeapplication/epub+zip"),
            category: .book,
            mime: "application/epub+zip"
        ),
        Sample(
            label: "docx",
            bytes: b("PK\u{03}\u{04}") + [0x14, 0, 6, 0, 8, 0] + [UInt8](repeating: 0, count: 16) + [19, 0, 0, 0]
                + b("[Content_Types].xml word/document.xml"),
            category: .document,
            mime: "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
        ),
        Sample(
            label: "jar",
            bytes: b("PK\u{03}\u{04}") + [0x14, 0, 8, 0, 8, 0] + [UInt8](repeating: 0, count: 16) + [20, 0, 0, 0]
                + b("META-INF/MANIFEST.MF"),
            category: .package,
            mime: "application/java-archive"
        ),
        Sample(
            label: "mobi",
            bytes: pad(b("My Book"), to: 60) + b("BOOKMOBI"),
            category: .book,
            mime: "application/x-mobipocket-ebook"
        ),
        Sample(
            label: "djvu",
            bytes: b("AT&TFORM") + [0, 0, 0x10, 0] + b("DJVU"),
            category: .book,
            mime: "image/vnd.djvu"
        ),
        Sample(
            label: "gzip",
            bytes: [0x1F, 0x8B, 0x08, 0, 0, 0, 0, 0, 0, 3],
            category: .archive,
            mime: "application/gzip"
        ),
        Sample(label: "bzip2", bytes: b("BZh91AY&SY"), category: .archive, mime: "application/x-bzip2"),
        Sample(
            label: "xz",
            bytes: [0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00, 0, 4],
            category: .archive,
            mime: "application/x-xz"
        ),
        Sample(
            label: "zstd",
            bytes: [0x28, 0xB5, 0x2F, 0xFD, 0x24, 0x05],
            category: .archive,
            mime: "application/zstd"
        ),
        Sample(
            label: "lz4",
            bytes: [0x04, 0x22, 0x4D, 0x18, 0x64, 0x40],
            category: .archive,
            mime: "application/x-lz4"
        ),
        Sample(
            label: "7z",
            bytes: [0x37, 0x7A, 0xBC, 0xAF, 0x27, 0x1C, 0, 4],
            category: .archive,
            mime: "application/x-7z-compressed"
        ),
        Sample(label: "rar", bytes: b("Rar!\u{1A}\u{07}\u{01}\0"), category: .archive, mime: "application/vnd.rar"),
        Sample(label: "cab", bytes: b("MSCF\0\0\0\0"), category: .archive, mime: "application/vnd.ms-cab-compressed"),
        Sample(
            label: "tar",
            bytes: pad(b("notes.txt"), to: 257) + b("ustar\u{00}00"),
            category: .archive,
            mime: "application/x-tar"
        ),
        Sample(
            label: "zip",
            bytes: b("PK\u{03}\u{04}") + [0x14, 0, 0, 0, 8, 0] + [UInt8](repeating: 0, count: 16) + [5, 0, 0, 0]
                + b("a.txt"),
            category: .archive,
            mime: "application/zip"
        ),
        Sample(
            label: "sqlite",
            bytes: b("SQLite format 3\0") + [0x10, 0, 1, 1],
            category: .database,
            mime: "application/vnd.sqlite3"
        ),
        Sample(
            label: "parquet",
            bytes: b("PAR1") + [0x15, 0x04],
            category: .database,
            mime: "application/vnd.apache.parquet"
        ),
        Sample(
            label: "elf-exec",
            bytes: [0x7F] + b("ELF") + [2, 1, 1, 0] + [UInt8](repeating: 0, count: 8) + [2, 0, 0x3E, 0],
            category: .executable,
            mime: "application/x-executable"
        ),
        Sample(
            label: "elf-object",
            bytes: [0x7F] + b("ELF") + [2, 1, 1, 0] + [UInt8](repeating: 0, count: 8) + [1, 0, 0x3E, 0],
            category: .binary,
            mime: "application/x-object"
        ),
        Sample(
            label: "mach-o",
            bytes: [0xCF, 0xFA, 0xED, 0xFE, 0x07, 0, 0, 0x01],
            category: .executable,
            mime: "application/x-mach-binary"
        ),
        Sample(
            label: "java-class",
            bytes: [0xCA, 0xFE, 0xBA, 0xBE, 0, 0, 0, 0x41],
            category: .executable,
            mime: "application/java-vm"
        ),
        Sample(
            label: "fat-mach-o",
            bytes: [0xCA, 0xFE, 0xBA, 0xBE, 0, 0, 0, 2],
            category: .executable,
            mime: "application/x-mach-binary"
        ),
        Sample(
            label: "pe",
            bytes: pad(b("MZ\u{90}\0"), to: 60) + le32(64) + b("PE\0\0"),
            category: .executable,
            mime: "application/vnd.microsoft.portable-executable"
        ),
        Sample(
            label: "wasm",
            bytes: [0x00, 0x61, 0x73, 0x6D, 1, 0, 0, 0],
            category: .executable,
            mime: "application/wasm"
        ),
        Sample(
            label: "deb",
            bytes: b("!<arch>\ndebian-binary   "),
            category: .package,
            mime: "application/vnd.debian.binary-package"
        ),
        Sample(label: "ar", bytes: b("!<arch>\n/               "), category: .binary, mime: "application/x-archive"),
        Sample(
            label: "rpm",
            bytes: [0xED, 0xAB, 0xEE, 0xDB, 3, 0, 0, 0],
            category: .package,
            mime: "application/x-rpm"
        ),
        Sample(
            label: "lnk",
            bytes: [0x4C, 0, 0, 0, 0x01, 0x14, 0x02, 0, 0, 0],
            category: .shortcut,
            mime: "application/x-ms-shortcut"
        ),
        Sample(label: "ttf", bytes: [0, 1, 0, 0, 0, 0x12, 1, 0] + b("GDEF"), category: .font, mime: "font/ttf"),
        Sample(label: "otf", bytes: b("OTTO\0\u{0C}"), category: .font, mime: "font/otf"),
        Sample(label: "woff", bytes: b("wOFF\0\u{01}\0\0"), category: .font, mime: "font/woff"),
        Sample(label: "woff2", bytes: b("wOF2\0\u{01}\0\0"), category: .font, mime: "font/woff2"),
        Sample(label: "glb", bytes: b("glTF") + le32(2) + le32(1000), category: .mesh, mime: "model/gltf-binary"),
        Sample(label: "ply", bytes: b("ply\nformat ascii 1.0\n"), category: .mesh, mime: "application/x-ply"),
        Sample(label: "fbx", bytes: b("Kaydara FBX Binary  \0"), category: .mesh, mime: "application/vnd.autodesk.fbx"),
        Sample(label: "blend", bytes: b("BLENDER-v300"), category: .mesh, mime: "application/x-blender"),
        Sample(
            label: "age",
            bytes: b("age-encryption.org/v1\n-> X25519 "),
            category: .encrypted,
            mime: "application/x-age"
        ),
        Sample(
            label: "kdbx",
            bytes: [0x03, 0xD9, 0xA2, 0x9A, 0x67, 0xFB, 0x4B, 0xB5],
            category: .encrypted,
            mime: "application/x-keepass2"
        ),
        Sample(
            label: "luks",
            bytes: [0x4C, 0x55, 0x4B, 0x53, 0xBA, 0xBE, 0, 2],
            category: .encrypted,
            mime: "application/x-luks"
        ),
        Sample(
            label: "pgp-armored",
            bytes: b("-----BEGIN PGP MESSAGE-----\n\nhQEMA"),
            category: .encrypted,
            mime: "application/pgp-encrypted"
        ),
        Sample(
            label: "pem-key",
            bytes: b("-----BEGIN PRIVATE KEY-----\nMIIE"),
            category: .key,
            mime: "application/x-pem-file"
        ),
        Sample(
            label: "pem-cert",
            bytes: b("-----BEGIN CERTIFICATE-----\nMIID"),
            category: .key,
            mime: "application/x-x509-ca-cert"
        ),
        Sample(
            label: "ssh-pubkey",
            bytes: b("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5 me@host\n"),
            category: .key,
            mime: "text/plain"
        ),
        Sample(label: "html", bytes: b("\u{FEFF}<!DOCTYPE html>\n<html><head>"), category: .web, mime: "text/html"),
        Sample(
            label: "xml",
            bytes: b("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<config/>"),
            category: .config,
            mime: "application/xml"
        ),
        Sample(
            label: "ics",
            bytes: b("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n"),
            category: .calendar,
            mime: "text/calendar"
        ),
        Sample(label: "vcf", bytes: b("BEGIN:VCARD\r\nVERSION:3.0\r\n"), category: .contact, mime: "text/vcard"),
        Sample(
            label: "eml",
            bytes: b("Return-Path: <a@b.c>\nReceived: from x\n"),
            category: .email,
            mime: "message/rfc822"
        ),
        Sample(
            label: "mbox",
            bytes: b("From a@b.c Thu Jan  1 00:00:00 2025\nFrom: a@b.c\n"),
            category: .email,
            mime: "application/mbox"
        ),
        Sample(
            label: "shebang-python",
            bytes: b("#!/usr/bin/env python3\nprint(1)\n"),
            category: .code,
            mime: "text/x-python"
        ),
        Sample(label: "shebang-sh", bytes: b("#!/bin/sh\necho hi\n"), category: .code, mime: "application/x-sh"),
    ]

    @Test func atLeastFortySignaturesAreCovered() {
        #expect(Self.samples.count >= 40)
    }

    /// Without an extension, the bytes alone decide.
    @Test(arguments: samples)
    func identifiesByMagicWithoutExtension(_ sample: Sample) {
        let kind = FileKinds.identify(name: "noextension", header: sample.bytes)
        #expect(kind.category == sample.category)
        #expect(kind.mime == sample.mime)
        #expect(kind.method == .magic)
    }

    /// A signature behind a wrong binary extension wins over the extension.
    @Test func bytesOverruleAContradictingExtension() {
        let png: [UInt8] = [0x89] + Self.b("PNG\r\n\u{1A}\n") + [0, 0, 0, 13]
        let kind = FileKinds.identify(name: "holiday.jpg", header: png)
        #expect(kind.mime == "image/png")
        #expect(kind.method == .magic)
        let confirmed = FileKinds.identify(name: "holiday.png", header: png)
        #expect(confirmed.method == .extensionAndMagic)
    }

    /// A name of a binary format whose bytes have no signature and read as text is text (`sd kind
    /// --check-content` called a text file named .png an image); without the bytes, or with binary bytes, the
    /// name stands.
    @Test func textBehindABinaryNameIsText() {
        for name in ["notes.png", "todo.jpg", "list.pdf", "x.zip", "a.mp3"] {
            let kind = FileKinds.identify(name: name, header: Self.b("shopping list:\n- milk\n- bread\n"))
            #expect(kind.category == .text && kind.mime == "text/plain" && kind.method == .content, "\(name): \(kind)")
        }
        #expect(FileKinds.identify(name: "notes.png", header: nil).mime == "image/png")
        #expect(FileKinds.identify(name: "empty.png", header: []).mime == "image/png")
        #expect(FileKinds.identify(name: "noise.png", header: [0, 1, 2, 3, 0xFF, 0x00, 0x10]).mime == "image/png")
        #expect(FileKinds.identify(name: "notes.md", header: Self.b("plain words")).category == .text)
    }

    @Test func textFormatsDoNotContradictTextExtensions() {
        let kind = FileKinds.identify(name: "notes.md", header: Self.b("<html>not really</html>"))
        #expect(kind.category == .text)
        #expect(kind.method == .extension)
    }

    @Test func ambiguousExtensionsAreDecidedByBytes() {
        #expect(FileKinds.kind(forName: "x.ts").needsContent)
        let ts = [0x47, 0x40, 0x00, 0x10] + [UInt8](repeating: 0xFF, count: 184) + [0x47]
        #expect(FileKinds.identify(name: "clip.ts", header: ts).category == .video)
        #expect(FileKinds.identify(name: "app.ts", header: Self.b("export const x = 1\n")).category == .code)
        #expect(
            FileKinds.identify(name: "id.key", header: Self.b("-----BEGIN OPENSSH PRIVATE KEY-----\n")).category == .key
        )
        let keynote = Self.b("PK\u{03}\u{04}") + [UInt8](repeating: 0, count: 22) + [5, 0, 0, 0] + Self.b("Index")
        #expect(FileKinds.identify(name: "talk.key", header: keynote).category == .archive)
    }

    @Test func textAndBinaryWithoutAnyHint() {
        #expect(FileKinds.identify(name: "NOTES", header: Self.b("hello wörld\nsecond line\n")).category == .text)
        #expect(FileKinds.identify(name: "blob", header: [0x00, 0x13, 0x88, 0xFE, 0x00, 0x42]).category == .binary)
        // A multi-byte character cut by the end of the header is still text.
        #expect(FileKinds.identify(name: "cut", header: Self.b("caf") + [0xC3]).category == .text)
        #expect(
            FileKinds.identify(name: "latin1", header: Self.b("caf") + [0xE9, 0x20, 0x6F, 0x6B]).category == .binary
        )
    }

    @Test(arguments: [
        ("photo.JPG", FileCategory.image), ("clip.MoV", .video), ("song.flac", .audio), ("report.pdf", .document),
        ("budget.xlsx", .spreadsheet), ("deck.pptx", .presentation), ("backup.tar", .archive), ("main.swift", .code),
        ("readme.md", .text), ("cache.sqlite", .database), ("novel.epub", .book), ("font.woff2", .font),
        ("model.glb", .mesh), ("settings.yaml", .config), ("vault.kdbx", .encrypted), ("server.pem", .key),
        ("setup.exe", .executable), ("blob.o", .binary), ("mail.eml", .email), ("meeting.ics", .calendar),
        ("ana.vcf", .contact), ("index.html", .web), ("home.lnk", .shortcut), ("app.deb", .package),
        ("Makefile", .code), (".gitignore", .config), ("LICENSE", .text), ("archive.tar.gz", .archive),
    ])
    func extensionFastPath(_ name: String, _ category: FileCategory) {
        let lookup = FileKinds.kind(forName: name)
        #expect(lookup.kind?.category == category)
        #expect(lookup.needsContent == false)
    }

    @Test func extensionTableIsLargeEnough() {
        #expect(FileKinds.extensionCount >= 150)
    }

    @Test func unknownAndMissingExtensionsNeedContent() {
        #expect(FileKinds.kind(forName: "data.qqqzz").needsContent)
        #expect(FileKinds.kind(forName: "noext").needsContent)
        #expect(FileKinds.kind(forName: ".hidden").needsContent)
        #expect(FileKinds.kind(forName: "name.with.a.veryveryverylongextension").needsContent)
    }

    /// Real files written by real tools, identified through the same reader the indexer uses.
    @Test func realFilesFromRealTools() throws {
        let dir = try TemporaryDirectory()
        let made = try RealFiles.make(in: dir.path)
        for (path, category) in made {
            let reader = try LocalFileReader(path: path)
            let name = (path as NSString).lastPathComponent
            let kind = try FileKinds.identify(name: name, reader: reader, alwaysCheckContent: true)
            #expect(kind.category == category, "\(name): \(kind)")
            #expect(kind.method != .none)
        }
        #expect(made.count >= 5)
    }
}
