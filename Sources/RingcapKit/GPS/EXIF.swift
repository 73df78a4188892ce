/// A JPEG APP1 "Exif" segment (marker `FF E1` included), built per frame into memory allocated
/// once: IFD0 Make, Model, Software, DateTime; the Exif IFD with ExifVersion, DateTimeOriginal,
/// SubSecTimeOriginal, OffsetTime and OffsetTimeOriginal (`+00:00`: ringcap stamps in UTC); and,
/// when there is a fix, the GPS IFD: GPSVersionID 2.3, latitude/longitude with their N/S/E/W
/// references, GPSAltitude/Ref (when known; Ref 1 = below sea level), GPSSpeed in km/h (Ref `K`),
/// GPSTrack (Ref `T`, true north), GPSTimeStamp and GPSDateStamp (the fix's own UTC time, when
/// known), GPSMapDatum `WGS-84`.
///
/// Why not libexif: it allocates an ExifData tree, entries and the output buffer on every build,
/// and the writers build this a few hundred times a second. The segment is small and its layout
/// fixed (a big-endian TIFF structure of three IFDs), so it is written here byte by byte: about a
/// hundred stores per frame, no allocation. The tests read it back with exiftool, an independent
/// reader, tag by tag.
///
/// Usage (writer thread): `let app1 = exif.build(wallTimeNs: t, fix: fix)`, then write SOI
/// (`FF D8`), `app1`, and the encoder's output without its own SOI.
///
/// Not thread-safe: each writer thread owns one. The returned bytes are valid until the next
/// `build` or until the segment is destroyed.
public struct EXIFSegment: ~Copyable {
    /// The whole segment is built here; 1 KiB for the tags plus room for the three strings.
    private let buffer: UnsafeMutableRawPointer
    private let capacity: Int
    /// Make, Model, Software as NUL-terminated ASCII, fixed at init.
    private let make: [UInt8], model: [UInt8], software: [UInt8]

    /// Strings longer than 127 bytes are cut; bytes outside printable ASCII become `_`
    /// (EXIF ASCII fields are 7-bit).
    public init(make: String, model: String, software: String) {
        func ascii(_ s: String) -> [UInt8] {
            var out = s.utf8.prefix(127).map { (0x20...0x7E).contains($0) ? $0 : UInt8(ascii: "_") }
            out.append(0)
            return out
        }
        self.make = ascii(make)
        self.model = ascii(model)
        self.software = ascii(software)
        capacity = 1024 + self.make.count + self.model.count + self.software.count
        buffer = .allocate(byteCount: capacity, alignment: 8)
    }

    deinit { buffer.deallocate() }

    /// Builds the segment for a frame grabbed at `wallTimeNs` (UTC ns since the epoch) with
    /// `fix` (or none). Allocates nothing.
    public mutating func build(wallTimeNs: Int64, fix: GPSFix?) -> UnsafeRawBufferPointer {
        var w = TIFFWriter(base: buffer + 10, limit: capacity - 10)
        let hasFix = fix.map { $0.mode >= 2 && $0.latitude.isFinite && $0.longitude.isFinite } ?? false

        // TIFF header: big-endian ("MM"), magic 42, IFD0 at offset 8.
        w.put(at: 0, bytes: (0x4D, 0x4D))
        w.put16(at: 2, 42)
        w.put32(at: 4, 8)
        w.data = 8

        let wall = UTCFields(unixNs: wallTimeNs)

        // IFD0. Entries in ascending tag order, as TIFF requires.
        w.beginIFD(count: hasFix ? 6 : 5)
        make.withUnsafeBufferPointer { w.ascii(0x010F, $0) }
        model.withUnsafeBufferPointer { w.ascii(0x0110, $0) }
        software.withUnsafeBufferPointer { w.ascii(0x0131, $0) }
        w.dateTime(0x0132, wall)
        let exifPointer = w.entryLong(0x8769, 0)
        let gpsPointer = hasFix ? w.entryLong(0x8825, 0) : 0
        w.endIFD()

        // Exif IFD.
        w.put32(at: exifPointer, UInt32(w.data))
        w.beginIFD(count: 5)
        w.entryInline(0x9000, type: TIFFWriter.undefined, count: 4, bytes: (0x30, 0x32, 0x33, 0x32))  // "0232"
        w.dateTime(0x9003, wall)
        w.offsetUTC(0x9010)
        w.offsetUTC(0x9011)
        w.subSec(0x9291, wall.microsecond)
        w.endIFD()

        if hasFix, let fix {
            w.put32(at: gpsPointer, UInt32(w.data))
            let hasAlt = fix.altitudeM.isFinite
            let hasSpeed = fix.speedMps.isFinite
            let hasTrack = fix.trackDeg.isFinite
            let hasTime = fix.timeNs != GPSFix.noTime
            var count = 6  // version, lat ref, lat, lon ref, lon, datum
            if hasAlt { count += 2 }
            if hasSpeed { count += 2 }
            if hasTrack { count += 2 }
            if hasTime { count += 2 }
            w.beginIFD(count: count)
            w.entryInline(0x0000, type: TIFFWriter.byte, count: 4, bytes: (2, 3, 0, 0))
            w.entryInline(0x0001, type: TIFFWriter.asciiType, count: 2,
                          bytes: (fix.latitude < 0 ? UInt8(ascii: "S") : UInt8(ascii: "N"), 0, 0, 0))
            w.degrees(0x0002, fix.latitude)
            w.entryInline(0x0003, type: TIFFWriter.asciiType, count: 2,
                          bytes: (fix.longitude < 0 ? UInt8(ascii: "W") : UInt8(ascii: "E"), 0, 0, 0))
            w.degrees(0x0004, fix.longitude)
            if hasAlt {
                w.entryInline(0x0005, type: TIFFWriter.byte, count: 1, bytes: (fix.altitudeM < 0 ? 1 : 0, 0, 0, 0))
                w.rationals(0x0006, (fix.altitudeM.magnitude, 100))
            }
            if hasTime {
                let t = UTCFields(unixNs: fix.timeNs)
                w.rationals3(0x0007, (UInt32(t.hour), 1), (UInt32(t.minute), 1),
                             (UInt32(t.second) * 1_000_000 + UInt32(t.microsecond), 1_000_000))
            }
            if hasSpeed {
                w.entryInline(0x000C, type: TIFFWriter.asciiType, count: 2, bytes: (UInt8(ascii: "K"), 0, 0, 0))
                w.rationals(0x000D, (fix.speedMps.magnitude * 3.6, 1000))
            }
            if hasTrack {
                w.entryInline(0x000E, type: TIFFWriter.asciiType, count: 2, bytes: (UInt8(ascii: "T"), 0, 0, 0))
                w.rationals(0x000F, (fix.trackDeg, 100))
            }
            w.mapDatum(0x0012)
            if hasTime { w.dateStamp(0x001D, UTCFields(unixNs: fix.timeNs)) }
            w.endIFD()
        }

        // APP1 header: marker, length (counts itself and everything after it), "Exif\0\0".
        let tiffLength = w.data
        let segmentLength = 2 + 6 + tiffLength
        precondition(!w.overflowed && segmentLength <= 0xFFFF, "EXIF segment overflow")
        let h = buffer.assumingMemoryBound(to: UInt8.self)
        h[0] = 0xFF; h[1] = 0xE1
        h[2] = UInt8(segmentLength >> 8); h[3] = UInt8(segmentLength & 0xFF)
        h[4] = 0x45; h[5] = 0x78; h[6] = 0x69; h[7] = 0x66; h[8] = 0; h[9] = 0  // "Exif\0\0"
        return UnsafeRawBufferPointer(start: buffer, count: 2 + segmentLength)
    }
}

/// Writes a big-endian TIFF structure into raw memory. Offsets are from the TIFF header, as
/// TIFF wants. Each IFD is reserved whole first (`beginIFD`); values longer than 4 bytes go to the
/// data area after it, at even offsets (TIFF's word alignment).
struct TIFFWriter {
    static let byte: UInt16 = 1, asciiType: UInt16 = 2, long: UInt16 = 4, rational: UInt16 = 5, undefined: UInt16 = 7

    let base: UnsafeMutableRawPointer
    let limit: Int
    /// Where the next IFD entry goes.
    var entry = 0
    /// Where the next out-of-line value (or IFD) goes.
    var data = 0
    var overflowed = false

    init(base: UnsafeMutableRawPointer, limit: Int) {
        self.base = base
        self.limit = limit
    }

    private mutating func fits(_ offset: Int, _ n: Int) -> Bool {
        if offset + n > limit { overflowed = true; return false }
        return true
    }

    mutating func put(at o: Int, bytes: (UInt8, UInt8)) {
        guard fits(o, 2) else { return }
        base.storeBytes(of: bytes.0, toByteOffset: o, as: UInt8.self)
        base.storeBytes(of: bytes.1, toByteOffset: o + 1, as: UInt8.self)
    }

    mutating func put16(at o: Int, _ v: UInt16) {
        guard fits(o, 2) else { return }
        base.storeBytes(of: v.bigEndian, toByteOffset: o, as: UInt16.self)
    }

    mutating func put32(at o: Int, _ v: UInt32) {
        guard fits(o, 4) else { return }
        base.storeBytes(of: v.bigEndian, toByteOffset: o, as: UInt32.self)
    }

    mutating func putByte(at o: Int, _ v: UInt8) {
        guard fits(o, 1) else { return }
        base.storeBytes(of: v, toByteOffset: o, as: UInt8.self)
    }

    /// Reserves an IFD of `count` entries at the data cursor; its values follow it.
    mutating func beginIFD(count: Int) {
        put16(at: data, UInt16(count))
        entry = data + 2
        data = entry + 12 * count + 4
    }

    /// Writes the next-IFD offset (none). Must come after exactly `count` entries.
    mutating func endIFD() {
        put32(at: entry, 0)
    }

    private mutating func header(_ tag: UInt16, _ type: UInt16, _ count: Int) {
        put16(at: entry, tag)
        put16(at: entry + 2, type)
        put32(at: entry + 4, UInt32(count))
    }

    /// Reserves `n` bytes of out-of-line value, points the current entry at them, returns where.
    private mutating func outOfLine(_ n: Int) -> Int {
        let at = data
        put32(at: entry + 8, UInt32(at))
        data += n + (n & 1)
        entry += 12
        return at
    }

    /// An entry whose value fits in 4 bytes. Returns nothing; the value is left-justified.
    mutating func entryInline(_ tag: UInt16, type: UInt16, count: Int, bytes: (UInt8, UInt8, UInt8, UInt8)) {
        header(tag, type, count)
        putByte(at: entry + 8, bytes.0); putByte(at: entry + 9, bytes.1)
        putByte(at: entry + 10, bytes.2); putByte(at: entry + 11, bytes.3)
        entry += 12
    }

    /// A LONG entry; returns the offset of its value so a pointer can be patched in later.
    mutating func entryLong(_ tag: UInt16, _ value: UInt32) -> Int {
        header(tag, Self.long, 1)
        let at = entry + 8
        put32(at: at, value)
        entry += 12
        return at
    }

    /// An ASCII entry from NUL-terminated bytes.
    mutating func ascii(_ tag: UInt16, _ text: UnsafeBufferPointer<UInt8>) {
        header(tag, Self.asciiType, text.count)
        if text.count <= 4 {
            for i in 0..<4 { putByte(at: entry + 8 + i, i < text.count ? text[i] : 0) }
            entry += 12
            return
        }
        let at = outOfLine(text.count)
        guard fits(at, text.count) else { return }
        (base + at).copyMemory(from: text.baseAddress!, byteCount: text.count)
    }

    /// "YYYY:MM:DD HH:MM:SS" and NUL: EXIF's date-time format.
    mutating func dateTime(_ tag: UInt16, _ t: UTCFields) {
        header(tag, Self.asciiType, 20)
        let at = outOfLine(20)
        var o = at
        digits(&o, t.year, 4); char(&o, ":"); digits(&o, t.month, 2); char(&o, ":"); digits(&o, t.day, 2)
        char(&o, " ")
        digits(&o, t.hour, 2); char(&o, ":"); digits(&o, t.minute, 2); char(&o, ":"); digits(&o, t.second, 2)
        putByte(at: o, 0)
    }

    /// "YYYY:MM:DD" and NUL.
    mutating func dateStamp(_ tag: UInt16, _ t: UTCFields) {
        header(tag, Self.asciiType, 11)
        var o = outOfLine(11)
        digits(&o, t.year, 4); char(&o, ":"); digits(&o, t.month, 2); char(&o, ":"); digits(&o, t.day, 2)
        putByte(at: o, 0)
    }

    /// "+00:00" and NUL.
    mutating func offsetUTC(_ tag: UInt16) {
        header(tag, Self.asciiType, 7)
        var o = outOfLine(7)
        char(&o, "+"); digits(&o, 0, 2); char(&o, ":"); digits(&o, 0, 2)
        putByte(at: o, 0)
    }

    /// Microseconds as six digits and NUL.
    mutating func subSec(_ tag: UInt16, _ microseconds: Int) {
        header(tag, Self.asciiType, 7)
        var o = outOfLine(7)
        digits(&o, microseconds, 6)
        putByte(at: o, 0)
    }

    /// "WGS-84" and NUL.
    mutating func mapDatum(_ tag: UInt16) {
        header(tag, Self.asciiType, 7)
        var o = outOfLine(7)
        let datum: StaticString = "WGS-84"
        for i in 0..<6 { putByte(at: o + i, datum.utf8Start[i]) }
        o += 6
        putByte(at: o, 0)
    }

    /// Degrees, minutes, seconds as three RATIONALs, seconds in 1/10000 s (≈ 3 mm), from the
    /// magnitude (the sign goes in the Ref tag). Worked in whole 1/10000 s so 59.99995 s rounds
    /// into the next minute instead of writing 60 s.
    mutating func degrees(_ tag: UInt16, _ value: Double) {
        let units = UInt64((value.magnitude * 3600 * 10_000).rounded())
        let deg = units / 36_000_000
        let rem = units % 36_000_000
        rationals3(tag, (UInt32(deg), 1), (UInt32(rem / 600_000), 1), (UInt32(rem % 600_000), 10_000))
    }

    /// One RATIONAL: `value` scaled by `denominator` and rounded.
    mutating func rationals(_ tag: UInt16, _ v: (Double, UInt32)) {
        header(tag, Self.rational, 1)
        let at = outOfLine(8)
        let scaled = (v.0 * Double(v.1)).rounded()
        put32(at: at, scaled.isFinite && scaled >= 0 && scaled < 4.0e9 ? UInt32(scaled) : 0)
        put32(at: at + 4, v.1)
    }

    mutating func rationals3(_ tag: UInt16, _ a: (UInt32, UInt32), _ b: (UInt32, UInt32), _ c: (UInt32, UInt32)) {
        header(tag, Self.rational, 3)
        let at = outOfLine(24)
        put32(at: at, a.0); put32(at: at + 4, a.1)
        put32(at: at + 8, b.0); put32(at: at + 12, b.1)
        put32(at: at + 16, c.0); put32(at: at + 20, c.1)
    }

    private mutating func char(_ o: inout Int, _ c: Unicode.Scalar) {
        putByte(at: o, UInt8(ascii: c))
        o += 1
    }

    private mutating func digits(_ o: inout Int, _ value: Int, _ width: Int) {
        var v = value
        for i in stride(from: width - 1, through: 0, by: -1) {
            putByte(at: o + i, UInt8(ascii: "0") + UInt8(v % 10))
            v /= 10
        }
        o += width
    }
}
