import Foundation
import Testing

/// `ringcap record` end to end: the real binary, real OpenCV decoding real H.264 and MJPEG
/// files made by ffmpeg, real files on disk read back by OpenCV and validated by an
/// independent JSON Schema validator.
@Suite(.serialized)
struct RecordEndToEndTests {
    /// Two files at once, one H.264 and one MJPEG: every frame is there, in order, decodes at
    /// the right size, shows the right bar code, has a valid sidecar in the folder of its time,
    /// and the stats add up.
    @Test func recordsTwoFilesCompletely() throws {
        let dir = try TestEnvironment.scratch("files")
        defer { try? FileManager.default.removeItem(at: dir) }
        let h264 = dir.appendingPathComponent("a.mp4").path
        let mjpeg = dir.appendingPathComponent("b.avi").path
        try makeBarcodeVideo(at: h264, frames: 48, codec: "h264")
        try makeBarcodeVideo(at: mjpeg, frames: 40, codec: "mjpeg")
        let out = dir.appendingPathComponent("out")
        let stats = dir.appendingPathComponent("stats.json")

        let result = try runRingcap(["record", "--camera", "h264=\(h264)", "--camera", "mjpeg=\(mjpeg)",
                                     "--out", out.path, "--writers", "2", "--stats-json", stats.path])
        #expect(result.status == 0, "stderr: \(result.stderr)")

        let (frames, strays, orphans) = try recordedFrames(in: out)
        #expect(strays.isEmpty, "files that are not frames: \(strays)")
        #expect(orphans.isEmpty, "JPEGs without sidecars: \(orphans)")
        for (camera, count, source) in [("h264", 48, h264), ("mjpeg", 40, mjpeg)] {
            let list = frames[camera] ?? []
            #expect(list.map(\.seq) == Array(0..<count), "\(camera): seqs \(list.map(\.seq))")
            for frame in list {
                let probe = try #require(probeImage(frame.jpg), "\(frame.jpg) does not decode")
                #expect(probe.width == 320 && probe.height == 240)
                #expect(probe.code == frame.seq, "\(frame.jpg) shows frame \(String(describing: probe.code)), sidecar says \(frame.seq)")
                #expect(frame.sidecar["source"] as? String == source)
                #expect(frame.sidecar["width"] as? Int == 320 && frame.sidecar["height"] as? Int == 240)
                let jpeg = try #require(frame.sidecar["jpeg"] as? [String: Any])
                let size = try FileManager.default.attributesOfItem(atPath: frame.jpg)[.size] as? Int
                #expect(jpeg["bytes"] as? Int == size, "sidecar bytes vs file size")
                if camera == "mjpeg" {  // the file's own JPEGs, stored as they came (passthrough)
                    #expect(jpeg["passthrough"] as? Bool == true && jpeg["quality"] is NSNull, "\(jpeg)")
                } else {
                    #expect(jpeg["quality"] as? Int == 85 && jpeg["passthrough"] as? Bool == false, "\(jpeg)")
                }
                expectFolderMatchesTime(frame, out: out)
            }
            let times = list.compactMap { ($0.sidecar["monotonic_ns"] as? Int) }
            #expect(times == times.sorted(), "\(camera): monotonic stamps go backwards")
        }
        try expectSidecarsValid(frames.values.flatMap { $0.map(\.json) })

        let (root, cameras) = try readStats(stats)
        #expect((root["elapsed_s"] as? Double ?? -1) > 0)
        for (camera, count) in [("h264", 48), ("mjpeg", 40)] {
            let c = try #require(cameras[camera])
            #expect(c["captured"] as? Int == count)
            #expect(c["written"] as? Int == count)
            #expect(c["dropped"] as? Int == 0)
            #expect(c["failed"] as? Int == 0)
            #expect(c["reconnects"] as? Int == 0)
            let latency = try #require(c["latency_ms"] as? [String: Any])
            for key in ["p50", "p90", "p99", "max"] { #expect((latency[key] as? Double ?? -1) >= 0, "latency \(key)") }
        }
        #expect(result.stderr.contains("captured"), "the summary table is printed on stderr")
    }

    /// A test-pattern camera for a few seconds gives about FPS × seconds frames, gap-free.
    @Test func testPatternDeliversItsRate() throws {
        let dir = try TestEnvironment.scratch("pattern")
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out")
        let stats = dir.appendingPathComponent("stats.json")
        let result = try runRingcap(["record", "--camera", "test:320x240@20", "--out", out.path, "--duration", "3",
                                     "--stats-json", stats.path])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        let list = try recordedFrames(in: out).frames["cam0"] ?? []
        // 20 fps × 3 s = 60; generous bounds, since CI machines are loaded (this is no speed test).
        #expect(list.count >= 30 && list.count <= 66, "got \(list.count) frames")
        #expect(list.map(\.seq) == Array(0..<list.count), "a live camera with no pressure drops nothing")
        for frame in list.prefix(5) {
            let probe = try #require(probeImage(frame.jpg))
            #expect(probe.width == 320 && probe.height == 240)
            expectFolderMatchesTime(frame, out: out)
        }
        // Wall-clock stamps advance at the camera's rate.
        if let first = list.first, let last = list.last, list.count > 10,
           let t0 = parseSidecarTime(first.sidecar["time"] as? String ?? ""),
           let t1 = parseSidecarTime(last.sidecar["time"] as? String ?? "") {
            let rate = Double(last.seq - first.seq) / (t1 - t0)
            #expect(rate > 15 && rate < 25, "stamped rate \(rate) frames/s")
        }
        try expectSidecarsValid(list.map(\.json))
        let c = try #require(try readStats(stats).cameras["cam0"])
        #expect(c["captured"] as? Int == list.count && c["written"] as? Int == list.count)
    }

    /// Overload: one writer, a tiny ring, fast cameras. Frames are dropped, every one is
    /// accounted for, and what is written is the newest.
    @Test func overloadDropsOldestAndAccountsForEveryFrame() throws {
        let dir = try TestEnvironment.scratch("overload")
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out")
        let stats = dir.appendingPathComponent("stats.json")
        let ring = 4
        var args = ["record", "--out", out.path, "--writers", "1", "--ring", "\(ring)", "--duration", "3",
                    "--stats-json", stats.path, "--quality", "95"]
        for i in 0..<4 { args += ["--camera", "c\(i)=test:960x540@400"] }
        let result = try runRingcap(args)
        #expect(result.status == 0, "stderr: \(result.stderr)")
        let (frames, strays, orphans) = try recordedFrames(in: out)
        #expect(strays.isEmpty && orphans.isEmpty)
        let (_, cameras) = try readStats(stats)
        var totalDropped = 0
        for i in 0..<4 {
            let name = "c\(i)"
            let c = try #require(cameras[name])
            let captured = try #require(c["captured"] as? Int)
            let written = try #require(c["written"] as? Int)
            let dropped = try #require(c["dropped"] as? Int)
            let failed = try #require(c["failed"] as? Int)
            #expect(captured == written + dropped + failed, "\(name): \(captured) != \(written) + \(dropped) + \(failed)")
            #expect(failed == 0)
            totalDropped += dropped
            let list = frames[name] ?? []
            #expect(list.count == written, "\(name): \(list.count) files vs \(written) written")
            let seqs = list.map(\.seq)
            #expect(Set(seqs).count == seqs.count, "no frame written twice")
            #expect(seqs.allSatisfy { $0 < captured })
            // Newest win: the last frames captured are on disk (only the ring, the writer and
            // the other cameras' newest can stand between the newest written and the last).
            if let newest = seqs.max() {
                #expect(newest >= captured - 1 - (ring + 2), "\(name): newest written \(newest) of \(captured)")
            }
            // The drop count a sidecar carries never goes backwards.
            let drops = list.compactMap { ($0.sidecar["ring"] as? [String: Any])?["dropped"] as? Int }
            #expect(drops == drops.sorted())
        }
        #expect(totalDropped > 0, "four 400 frames/s cameras into one writer must overflow a ring of \(ring)")
    }

    /// The folder a frame is in names its UTC minute, and the file name its time and seq.
    private func expectFolderMatchesTime(_ frame: RecordedFrame, out: URL, sourceLocation: SourceLocation = #_sourceLocation) {
        guard let time = frame.sidecar["time"] as? String, time.count == 27 else {
            Issue.record("bad time in \(frame.json)", sourceLocation: sourceLocation)
            return
        }
        let c = Array(time)
        let folder = "\(String(c[0..<4]))/\(String(c[5..<7]))/\(String(c[8..<10]))/\(String(c[11..<13]))/\(String(c[14..<16]))"
        let name = "\(String(c[11..<13]))\(String(c[14..<16]))\(String(c[17..<19])).\(String(c[20..<26]))_\(frame.seq).jpg"
        let expected = out.appendingPathComponent("\(frame.camera)/\(folder)/\(name)").path
        #expect(frame.jpg == expected, sourceLocation: sourceLocation)
    }
}
