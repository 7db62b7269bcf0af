import Foundation
import SDCore

/// Files in real formats, written by real tools (python's zipfile, sqlite3, zlib; gzip, bzip2, xz, tar), for
/// tests that must see bytes exactly as the world writes them.
public enum RealFiles {
    public static func make(in dir: String) throws -> [(String, FileCategory)] {
        let script = """
            import sqlite3, zipfile, zlib, struct, sys, os, tarfile
            d = sys.argv[1]
            c = sqlite3.connect(os.path.join(d, 'data.db')); c.execute('create table t(x)'); c.commit(); c.close()
            with zipfile.ZipFile(os.path.join(d, 'bundle.zip'), 'w') as z: z.writestr('a.txt', 'hello')
            with zipfile.ZipFile(os.path.join(d, 'book.epub'), 'w') as z:
                z.writestr('mimetype', 'application/epub+zip', compress_type=zipfile.ZIP_STORED)
            def chunk(t, b): return struct.pack('>I', len(b)) + t + b + struct.pack('>I', zlib.crc32(t + b))
            png = b'\\x89PNG\\r\\n\\x1a\\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', 1, 1, 8, 0, 0, 0, 0)) + \\
                  chunk(b'IDAT', zlib.compress(b'\\x00\\x00')) + chunk(b'IEND', b'')
            open(os.path.join(d, 'pixel'), 'wb').write(png)
            open(os.path.join(d, 'plain.txt'), 'w').write('just text\\n')
            with tarfile.open(os.path.join(d, 'bundle.tar'), 'w') as t: t.add(os.path.join(d, 'plain.txt'), 'plain.txt')
            """
        let python = Run.which("python3") ?? "/usr/bin/python3"
        try Run.program(python, ["-c", script, dir])
        var made: [(String, FileCategory)] = [
            ("\(dir)/data.db", .database), ("\(dir)/bundle.zip", .archive), ("\(dir)/book.epub", .book),
            ("\(dir)/pixel", .image), ("\(dir)/plain.txt", .text), ("\(dir)/bundle.tar", .archive),
        ]
        for (tool, ext) in [("gzip", "gz"), ("bzip2", "bz2"), ("xz", "xz")] {
            guard let path = Run.which(tool) else { continue }
            let source = "\(dir)/for-\(tool).txt"
            try Data("compress me\n".utf8).write(to: URL(fileURLWithPath: source))
            try Run.program(path, [source])
            made.append(("\(source).\(ext)", .archive))
        }
        if FileManager.default.fileExists(atPath: "/bin/ls") { made.append(("/bin/ls", .executable)) }
        return made.filter { FileManager.default.fileExists(atPath: $0.0) }
    }
}
