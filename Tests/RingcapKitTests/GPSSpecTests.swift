import Testing
@testable import RingcapKit

@Suite struct GPSSpecTests {
    static let good: [(String, GPSSpec)] = [
        ("none", .none),
        ("gpsd", .gpsd(host: "127.0.0.1", port: 2947)),
        ("GPSD", .gpsd(host: "127.0.0.1", port: 2947)),
        ("gpsd://127.0.0.1:2947", .gpsd(host: "127.0.0.1", port: 2947)),
        ("gpsd://boat.local:3000", .gpsd(host: "boat.local", port: 3000)),
        ("gpsd://boat.local", .gpsd(host: "boat.local", port: 2947)),
        ("gpsd://[::1]:2948", .gpsd(host: "::1", port: 2948)),
        ("/dev/ttyUSB0", .device(path: "/dev/ttyUSB0")),
        ("/dev/serial/by-id/usb-u-blox_GNSS-if00", .device(path: "/dev/serial/by-id/usb-u-blox_GNSS-if00")),
        ("udp://0.0.0.0:10110", .udp(host: "0.0.0.0", port: 10110)),
        ("tcp://192.168.1.20:10110", .tcp(host: "192.168.1.20", port: 10110)),
        ("fixed:52.5,13.4", .fixed(latitude: 52.5, longitude: 13.4, altitudeM: .nan)),
        ("fixed:-33.8568,151.2153,5", .fixed(latitude: -33.8568, longitude: 151.2153, altitudeM: 5)),
        ("fixed: 31.5, 35.5, -430", .fixed(latitude: 31.5, longitude: 35.5, altitudeM: -430)),
        ("fixed:90,-180", .fixed(latitude: 90, longitude: -180, altitudeM: .nan)),
    ]

    @Test(arguments: good)
    func parses(_ text: String, _ expected: GPSSpec) throws {
        let spec = try GPSSpec(parsing: text)
        #expect(spec == expected)
        // description round-trips
        #expect(try GPSSpec(parsing: spec.description) == spec)
    }

    static let bad: [(String, String)] = [
        ("gpds", "gpds"),
        ("http://x:1", "http://"),
        ("udp://127.0.0.1", "port"),
        ("udp://127.0.0.1:0", "\"0\""),
        ("tcp://host:65536", "65536"),
        ("tcp://host:abc", "abc"),
        ("gpsd://:2947", "host"),
        ("fixed:91,0", "latitude within -90...90, not 91"),
        ("fixed:-90.5,0", "-90.5"),
        ("fixed:0,180.01", "longitude within -180...180, not 180.01"),
        ("fixed:abc,1", "\"abc\""),
        ("fixed:1", "fixed:LAT,LON"),
        ("fixed:1,2,3,4", "fixed:LAT,LON"),
        ("fixed:1,2,high", "\"high\""),
        ("fixed:nan,2", "\"nan\""),
        ("", "expected"),
    ]

    @Test(arguments: bad)
    func rejects(_ text: String, _ mentioned: String) {
        do {
            let spec = try GPSSpec(parsing: text)
            Issue.record("\(text) parsed as \(spec)")
        } catch {
            #expect(error.value == text)
            #expect(error.description.contains(mentioned), "\(error.description)")
            #expect(error.description.contains("\"\(text)\""))
        }
    }

    @Test func gpsdSourceForPrivateGPSD() throws {
        #expect(try GPSSpec(parsing: "udp://127.0.0.1:10110").gpsdSource == "udp://127.0.0.1:10110")
        #expect(try GPSSpec(parsing: "tcp://10.0.0.1:2000").gpsdSource == "tcp://10.0.0.1:2000")
        #expect(try GPSSpec(parsing: "/dev/ttyUSB0").gpsdSource == "/dev/ttyUSB0")
        #expect(try GPSSpec(parsing: "gpsd").gpsdSource == nil)
        #expect(GPSSpec.default.description == "gpsd://127.0.0.1:2947")
    }
}
