import Foundation
import Prometheus
import RingcapKit
import Synchronization

/// `GET /metrics`: the engine's counters and gauges in Prometheus' text format, through
/// swift-prometheus (each series' name and labels rendered once, values set at each scrape),
/// and the grab-to-disk latency histogram the writers keep in fixed buckets, rendered here in
/// the same format. Thread-safe: a scrape holds one lock (two scrapes at once take turns).
final class MetricsExporter: Sendable {
    private struct CameraSeries {
        let captured, written, dropped, failed, paused, reconnects: Counter
        let fps, sinceLastFrame, viewers: Gauge
        let liveSkipped, tapSkipped, variantEncodes: Counter
    }

    private let registry = PrometheusCollectorRegistry()
    private let cameras: [String: CameraSeries]
    private let ringDepth, ringCapacity, diskFree, gpsMode, gpsAge, gpsOffset, resident, clients: Gauge
    private let deletedFiles, deletedBytes, cpuSeconds, failedLogins: Counter
    private let lock = Mutex(())
    private let outDirectory: String

    init(cameraNames: [String], outDirectory: String) {
        self.outDirectory = outDirectory
        let r = registry
        var cameras: [String: CameraSeries] = [:]
        for name in cameraNames {
            let l = [("camera", name)]
            cameras[name] = CameraSeries(
                captured: r.makeCounter(descriptor: .init(metricName: "ringcap_frames_captured_total", unitName: "", helpText: "Frames captured (stamped, given a seq) this run."), labels: l),
                written: r.makeCounter(descriptor: .init(metricName: "ringcap_frames_written_total", unitName: "", helpText: "Frames whose JPEG and sidecar are stored."), labels: l),
                dropped: r.makeCounter(descriptor: .init(metricName: "ringcap_frames_dropped_total", unitName: "", helpText: "Frames evicted from the full ring before a writer got them."), labels: l),
                failed: r.makeCounter(descriptor: .init(metricName: "ringcap_frames_failed_total", unitName: "", helpText: "Frames a writer could not store."), labels: l),
                paused: r.makeCounter(descriptor: .init(metricName: "ringcap_frames_paused_total", unitName: "", helpText: "Frames not stored because the camera's recording was off."), labels: l),
                reconnects: r.makeCounter(descriptor: .init(metricName: "ringcap_camera_reconnects_total", unitName: "", helpText: "Times the camera was opened again after a failure."), labels: l),
                fps: r.makeGauge(descriptor: .init(metricName: "ringcap_camera_fps", unitName: "", helpText: "Frames captured per second over the last second."), labels: l),
                sinceLastFrame: r.makeGauge(descriptor: .init(metricName: "ringcap_camera_seconds_since_last_frame", unitName: "", helpText: "Seconds since the newest captured frame (-1 before any)."), labels: l),
                viewers: r.makeGauge(descriptor: .init(metricName: "ringcap_live_viewers", unitName: "", helpText: "Live viewers of the camera (streams, snapshots waiting, WebSocket pages)."), labels: l),
                liveSkipped: r.makeCounter(descriptor: .init(metricName: "ringcap_live_frames_skipped_total", unitName: "", helpText: "Frames live viewers did not get because they were slower than the camera."), labels: l),
                tapSkipped: r.makeCounter(descriptor: .init(metricName: "ringcap_live_tap_skipped_total", unitName: "", helpText: "Stored frames not copied for the live view (every slot busy)."), labels: l),
                variantEncodes: r.makeCounter(descriptor: .init(metricName: "ringcap_live_variant_encodes_total", unitName: "", helpText: "JPEGs encoded again for width/quality variants of the live view."), labels: l))
        }
        self.cameras = cameras
        ringDepth = r.makeGauge(descriptor: .init(metricName: "ringcap_ring_depth", unitName: "", helpText: "Frames in the ring between capture and writers."))
        ringCapacity = r.makeGauge(descriptor: .init(metricName: "ringcap_ring_capacity", unitName: "", helpText: "Frames the ring holds."))
        diskFree = r.makeGauge(descriptor: .init(metricName: "ringcap_disk_free_bytes", unitName: "", helpText: "Free bytes on the file system of --out (for unprivileged users)."))
        deletedFiles = r.makeCounter(descriptor: .init(metricName: "ringcap_retention_deleted_files_total", unitName: "", helpText: "Files retention deleted this run."))
        deletedBytes = r.makeCounter(descriptor: .init(metricName: "ringcap_retention_deleted_bytes_total", unitName: "", helpText: "Bytes retention deleted this run."))
        gpsMode = r.makeGauge(descriptor: .init(metricName: "ringcap_gps_fix_mode", unitName: "", helpText: "GPS fix: 0 none, 2 2D, 3 3D; -1 when no GPS is read."))
        gpsAge = r.makeGauge(descriptor: .init(metricName: "ringcap_gps_fix_age_seconds", unitName: "", helpText: "Age of the newest fix (-1 without one)."))
        gpsOffset = r.makeGauge(descriptor: .init(metricName: "ringcap_gps_clock_offset_seconds", unitName: "", helpText: "GPS time minus the system clock (0 until fixes with a time came)."))
        resident = r.makeGauge(descriptor: .init(metricName: "process_resident_memory_bytes", unitName: "", helpText: "Resident memory of the ringcap process."))
        cpuSeconds = r.makeCounter(descriptor: .init(metricName: "process_cpu_seconds_total", unitName: "", helpText: "User and system CPU time of the ringcap process."))
        clients = r.makeGauge(descriptor: .init(metricName: "ringcap_http_clients", unitName: "", helpText: "HTTP requests being served now."))
        failedLogins = r.makeCounter(descriptor: .init(metricName: "ringcap_http_failed_logins_total", unitName: "", helpText: "Failed logins (form and HTTP Basic)."))
    }

    struct Extras {
        var clockOffsetMs: Double?
        var clients: Int
        var failedLogins: Int
        var streams: [String: CameraStreams]
    }

    func render(_ status: EngineStatus, histograms: [String: (counts: [Int], sumUs: Int)], extras: Extras) -> String {
        lock.withLock { _ in
            func set(_ counter: Counter, _ value: Int) {
                counter.reset()
                counter.increment(by: Int64(value))
            }
            let nowNs = Int64(Date().timeIntervalSince1970 * 1e9)
            for camera in status.cameras {
                guard let s = cameras[camera.name] else { continue }
                set(s.captured, camera.captured); set(s.written, camera.written); set(s.dropped, camera.dropped)
                set(s.failed, camera.failed); set(s.paused, camera.paused); set(s.reconnects, camera.reconnects)
                s.fps.set(camera.fps)
                s.sinceLastFrame.set(camera.lastFrameWallNs.map { Double(nowNs - $0) / 1e9 } ?? -1)
                if let streams = extras.streams[camera.name] {
                    let pumps = streams.allPumps
                    s.viewers.set(Double(pumps.reduce(0) { $0 + $1.feed.viewers }))
                    set(s.liveSkipped, pumps.reduce(0) { $0 + $1.feed.skipped.load(ordering: .relaxed) })
                    set(s.tapSkipped, streams.control.latestJPEG.skipped.load(ordering: .relaxed))
                    set(s.variantEncodes, pumps.reduce(0) { $0 + $1.encodes.load(ordering: .relaxed) })
                }
            }
            ringDepth.set(Double(status.ringDepth))
            ringCapacity.set(Double(status.ringCapacity))
            var fs = statvfs()
            if statvfs(outDirectory, &fs) == 0 { diskFree.set(Double(UInt64(fs.f_bavail) * UInt64(fs.f_frsize))) }
            set(deletedFiles, status.retention.deletedFiles)
            set(deletedBytes, Int(status.retention.deletedBytes))
            gpsMode.set(Double(status.gps?.mode ?? -1))
            gpsAge.set(status.gps?.ageSeconds ?? -1)
            gpsOffset.set((extras.clockOffsetMs ?? 0) / 1000)
            resident.set(Double(Self.residentBytes()))
            var usage = rusage()
            getrusage(RUSAGE_SELF.rawValue, &usage)
            let cpu = Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
            cpuSeconds.reset()
            cpuSeconds.increment(by: cpu)
            clients.set(Double(extras.clients))
            set(failedLogins, extras.failedLogins)
            var text = registry.emitToString()
            text += Self.histogramText(status.cameras.map(\.name), histograms)
            return text
        }
    }

    /// The latency histogram family, as Prometheus' text format wants it: cumulative buckets in
    /// seconds, `+Inf`, `_sum` and `_count`. Camera names are [A-Za-z0-9_-], no escaping needed.
    static func histogramText(_ names: [String], _ histograms: [String: (counts: [Int], sumUs: Int)]) -> String {
        let name = "ringcap_grab_to_disk_seconds"
        var text = "# HELP \(name) Time from the grab of a frame to its JPEG and sidecar stored.\n# TYPE \(name) histogram\n"
        let bounds = CameraCounters.latencyBucketBoundsUs
        for camera in names {
            guard let h = histograms[camera] else { continue }
            var cumulative = 0
            for (i, bound) in bounds.enumerated() {
                cumulative += h.counts[i]
                text += "\(name)_bucket{camera=\"\(camera)\",le=\"\(Double(bound) / 1e6)\"} \(cumulative)\n"
            }
            cumulative += h.counts[bounds.count]
            text += "\(name)_bucket{camera=\"\(camera)\",le=\"+Inf\"} \(cumulative)\n"
            text += "\(name)_sum{camera=\"\(camera)\"} \(Double(h.sumUs) / 1e6)\n"
            text += "\(name)_count{camera=\"\(camera)\"} \(cumulative)\n"
        }
        return text
    }

    static func residentBytes() -> Int {
        guard let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let fields = statm.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}
