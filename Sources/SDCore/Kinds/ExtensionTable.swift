/// The extension table: `extension category mime [family]`, one per line. `family` names the container whose
/// magic bytes confirm the extension (several formats share a container, e.g. docx and epub are zip files);
/// `?` marks an ambiguous extension whose bytes decide (`.ts` is TypeScript or an MPEG transport stream,
/// `.key` a private key or a Keynote deck).
enum ExtensionTable {
    static let text = """
        jpg image image/jpeg jpeg
        jpeg image image/jpeg jpeg
        jpe image image/jpeg jpeg
        jfif image image/jpeg jpeg
        png image image/png png
        apng image image/apng png
        gif image image/gif gif
        webp image image/webp riff
        bmp image image/bmp bmp
        dib image image/bmp bmp
        tif image image/tiff tiff
        tiff image image/tiff tiff
        ico image image/vnd.microsoft.icon ico
        cur image image/x-win-bitmap ico
        heic image image/heic ftyp
        heif image image/heif ftyp
        avif image image/avif ftyp
        jxl image image/jxl jxl
        jp2 image image/jp2 jp2
        psd image image/vnd.adobe.photoshop psd
        svg image image/svg+xml xml
        svgz image image/svg+xml gzip
        raw image image/x-raw tiff
        cr2 image image/x-canon-cr2 tiff
        cr3 image image/x-canon-cr3 ftyp
        nef image image/x-nikon-nef tiff
        arw image image/x-sony-arw tiff
        dng image image/x-adobe-dng tiff
        orf image image/x-olympus-orf
        rw2 image image/x-panasonic-rw2
        raf image image/x-fuji-raf
        xcf image image/x-xcf
        exr image image/x-exr
        hdr image image/vnd.radiance
        tga image image/x-tga
        qoi image image/qoi
        mp4 video video/mp4 ftyp
        m4v video video/x-m4v ftyp
        mov video video/quicktime ftyp
        qt video video/quicktime ftyp
        mkv video video/x-matroska ebml
        webm video video/webm ebml
        avi video video/x-msvideo riff
        wmv video video/x-ms-wmv asf
        asf video video/x-ms-asf asf
        flv video video/x-flv flv
        mpg video video/mpeg mpeg
        mpeg video video/mpeg mpeg
        m2ts video video/mp2t mpegts
        mts video video/mp2t mpegts
        ts code text/typescript ?
        3gp video video/3gpp ftyp
        3g2 video video/3gpp2 ftyp
        ogv video video/ogg ogg
        vob video video/dvd mpeg
        mp3 audio audio/mpeg mp3
        flac audio audio/flac flac
        wav audio audio/wav riff
        aif audio audio/aiff aiff
        aiff audio audio/aiff aiff
        ogg audio audio/ogg ogg
        oga audio audio/ogg ogg
        opus audio audio/opus ogg
        m4a audio audio/mp4 ftyp
        m4b audio audio/mp4 ftyp
        aac audio audio/aac
        wma audio audio/x-ms-wma asf
        mid audio audio/midi midi
        midi audio audio/midi midi
        amr audio audio/amr
        ape audio audio/x-ape
        alac audio audio/mp4 ftyp
        pdf document application/pdf pdf
        doc document application/msword ole
        docx document application/vnd.openxmlformats-officedocument.wordprocessingml.document zip
        odt document application/vnd.oasis.opendocument.text zip
        rtf document application/rtf rtf
        pages document application/vnd.apple.pages zip
        ps document application/postscript ps
        eps document application/postscript ps
        tex document application/x-tex text
        xps document application/vnd.ms-xpsdocument zip
        wpd document application/vnd.wordperfect
        xls spreadsheet application/vnd.ms-excel ole
        xlsx spreadsheet application/vnd.openxmlformats-officedocument.spreadsheetml.sheet zip
        xlsm spreadsheet application/vnd.ms-excel.sheet.macroenabled.12 zip
        ods spreadsheet application/vnd.oasis.opendocument.spreadsheet zip
        numbers spreadsheet application/vnd.apple.numbers zip
        csv spreadsheet text/csv text
        tsv spreadsheet text/tab-separated-values text
        ppt presentation application/vnd.ms-powerpoint ole
        pptx presentation application/vnd.openxmlformats-officedocument.presentationml.presentation zip
        odp presentation application/vnd.oasis.opendocument.presentation zip
        key key application/x-pem-file ?
        zip archive application/zip zip
        gz archive application/gzip gzip
        tgz archive application/gzip gzip
        bz2 archive application/x-bzip2 bzip2
        xz archive application/x-xz xz
        zst archive application/zstd zstd
        lz4 archive application/x-lz4 lz4
        7z archive application/x-7z-compressed 7z
        rar archive application/vnd.rar rar
        tar archive application/x-tar tar
        iso archive application/x-iso9660-image
        cab archive application/vnd.ms-cab-compressed cab
        lzma archive application/x-lzma
        z archive application/x-compress
        txt text text/plain text
        md text text/markdown text
        markdown text text/markdown text
        rst text text/x-rst text
        log text text/plain text
        nfo text text/plain text
        org text text/org text
        adoc text text/asciidoc text
        swift code text/x-swift text
        rs code text/x-rust text
        py code text/x-python text
        pyi code text/x-python text
        js code text/javascript text
        mjs code text/javascript text
        cjs code text/javascript text
        jsx code text/javascript text
        tsx code text/typescript text
        c code text/x-c text
        h code text/x-c text
        cc code text/x-c++ text
        cpp code text/x-c++ text
        cxx code text/x-c++ text
        hpp code text/x-c++ text
        hh code text/x-c++ text
        m code text/x-objectivec text
        mm code text/x-objectivec text
        go code text/x-go text
        java code text/x-java text
        kt code text/x-kotlin text
        kts code text/x-kotlin text
        scala code text/x-scala text
        rb code text/x-ruby text
        php code application/x-httpd-php text
        pl code text/x-perl text
        pm code text/x-perl text
        lua code text/x-lua text
        r code text/x-r text
        jl code text/x-julia text
        hs code text/x-haskell text
        ml code text/x-ocaml text
        ex code text/x-elixir text
        exs code text/x-elixir text
        erl code text/x-erlang text
        clj code text/x-clojure text
        dart code text/x-dart text
        zig code text/x-zig text
        nim code text/x-nim text
        cs code text/x-csharp text
        fs code text/x-fsharp text
        vb code text/x-vb text
        sh code application/x-sh text
        bash code application/x-sh text
        zsh code application/x-sh text
        fish code application/x-sh text
        ps1 code text/x-powershell text
        bat code application/x-bat text
        sql code application/sql text
        asm code text/x-asm text
        s code text/x-asm text
        v code text/x-verilog text
        vhd code text/x-vhdl text
        f90 code text/x-fortran text
        cmake code text/x-cmake text
        gradle code text/x-gradle text
        ipynb code application/x-ipynb+json text
        proto code text/x-protobuf text
        json config application/json text
        jsonc config application/json text
        yaml config application/yaml text
        yml config application/yaml text
        toml config application/toml text
        ini config text/plain text
        cfg config text/plain text
        conf config text/plain text
        env config text/plain text
        properties config text/plain text
        plist config application/x-plist
        xml config application/xml xml
        lock config text/plain text
        editorconfig config text/plain text
        html web text/html html
        htm web text/html html
        xhtml web application/xhtml+xml xml
        css web text/css text
        scss web text/x-scss text
        sass web text/x-sass text
        less web text/x-less text
        vue web text/x-vue text
        svelte web text/x-svelte text
        wasm executable application/wasm wasm
        sqlite database application/vnd.sqlite3 sqlite
        sqlite3 database application/vnd.sqlite3 sqlite
        db database application/vnd.sqlite3 ?
        mdb database application/x-msaccess
        accdb database application/x-msaccess
        parquet database application/vnd.apache.parquet parquet
        dbf database application/x-dbf
        realm database application/x-realm
        epub book application/epub+zip zip
        mobi book application/x-mobipocket-ebook mobi
        azw book application/vnd.amazon.ebook mobi
        azw3 book application/vnd.amazon.ebook mobi
        fb2 book application/x-fictionbook+xml xml
        djvu book image/vnd.djvu djvu
        cbz book application/vnd.comicbook+zip zip
        cbr book application/vnd.comicbook-rar rar
        ttf font font/ttf ttf
        otf font font/otf otf
        woff font font/woff woff
        woff2 font font/woff2 woff2
        ttc font font/collection ttc
        pfb font application/x-font-type1
        obj mesh model/obj text
        stl mesh model/stl
        fbx mesh application/vnd.autodesk.fbx fbx
        gltf mesh model/gltf+json text
        glb mesh model/gltf-binary glb
        ply mesh application/x-ply ply
        3ds mesh application/x-3ds
        dae mesh model/vnd.collada+xml xml
        blend mesh application/x-blender blend
        usdz mesh model/vnd.usdz+zip zip
        usd mesh model/vnd.usd
        gpg encrypted application/pgp-encrypted
        pgp encrypted application/pgp-encrypted
        asc encrypted application/pgp-signature text
        age encrypted application/x-age age
        enc encrypted application/octet-stream
        kdbx encrypted application/x-keepass2 kdbx
        luks encrypted application/x-luks luks
        pem key application/x-pem-file pem
        crt key application/x-x509-ca-cert
        cer key application/pkix-cert
        der key application/x-x509-ca-cert
        p12 key application/x-pkcs12
        pfx key application/x-pkcs12
        pub key text/plain text
        ppk key application/x-putty-private-key text
        csr key application/pkcs10 pem
        exe executable application/vnd.microsoft.portable-executable pe
        dll executable application/vnd.microsoft.portable-executable pe
        so executable application/x-sharedlib elf
        dylib executable application/x-mach-binary macho
        elf executable application/x-executable elf
        o binary application/x-object elf
        a binary application/x-archive ar
        class executable application/java-vm class
        jar package application/java-archive zip
        apk package application/vnd.android.package-archive zip
        aab package application/octet-stream zip
        ipa package application/octet-stream zip
        deb package application/vnd.debian.binary-package ar
        rpm package application/x-rpm rpm
        msi package application/x-msi ole
        dmg package application/x-apple-diskimage
        pkg package application/octet-stream
        snap package application/vnd.snap
        appimage package application/x-appimage elf
        flatpak package application/vnd.flatpak
        whl package application/zip zip
        crate package application/gzip gzip
        bin binary application/octet-stream ?
        dat binary application/octet-stream ?
        img binary application/octet-stream
        eml email message/rfc822 text
        msg email application/vnd.ms-outlook ole
        mbox email application/mbox text
        emlx email message/rfc822 text
        ics calendar text/calendar text
        ical calendar text/calendar text
        vcs calendar text/x-vcalendar text
        vcf contact text/vcard text
        vcard contact text/vcard text
        lnk shortcut application/x-ms-shortcut lnk
        url shortcut application/x-url text
        webloc shortcut application/x-webloc
        desktop shortcut application/x-desktop text
        torrent binary application/x-bittorrent
        """
}
