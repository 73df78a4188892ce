/// Formats a frame's JSON sidecar into `sink` (reset first): the camera's constant `head`
/// (`{"camera":…,"source":…,`), then seq, time, monotonic_ns, width, height, jpeg, gps and ring,
/// as `Schemas/sidecar.schema.json` describes, and a newline.
///
/// Allocates nothing: writers call it for every frame. Thread-safe as long as each thread uses
/// its own sink.
func formatSidecar(into sidecar: inout ByteSink, head: [UInt8], meta: FrameMeta, quality: Int?, fileBytes: Int,
                   fix: GPSFix?, gps: WriterGPS) {
    sidecar.reset()
    head.withUnsafeBufferPointer { sidecar.append(bytes: $0) }
    sidecar.append("\"seq\":"); sidecar.append(int: Int64(bitPattern: meta.seq))
    sidecar.append(",\"time\":\""); sidecar.append(isoTimeNs: meta.wallNs)
    sidecar.append("\",\"monotonic_ns\":"); sidecar.append(int: Int64(bitPattern: meta.monotonicNs))
    sidecar.append(",\"width\":"); sidecar.append(int: Int(meta.width))
    sidecar.append(",\"height\":"); sidecar.append(int: Int(meta.height))
    // quality null and passthrough true: the camera's own JPEG, stored as it came.
    sidecar.append(",\"jpeg\":{\"quality\":")
    if let quality { sidecar.append(int: quality) } else { sidecar.append("null") }
    sidecar.append(",\"bytes\":"); sidecar.append(int: fileBytes)
    sidecar.append(quality == nil ? ",\"passthrough\":true" : ",\"passthrough\":false")
    sidecar.append("},\"gps\":")
    appendGPSJSON(fix, frameMonotonicNs: meta.monotonicNs, maxAgeNs: gps.maxAgeNs, source: gps.source, to: &sidecar)
    sidecar.append(",\"ring\":{\"depth\":"); sidecar.append(int: Int(meta.ringDepth))
    sidecar.append(",\"dropped\":"); sidecar.append(int: meta.droppedSoFar)
    sidecar.append("}}\n")
}
