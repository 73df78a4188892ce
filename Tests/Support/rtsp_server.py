#!/usr/bin/python3
"""A live RTSP camera on loopback for the tests: gst-rtsp-server through python3-gi.

Usage: rtsp_server.py PORT [WIDTHxHEIGHT [FPS]]
Serves rtsp://127.0.0.1:PORT/cam, a live H.264 test pattern (x264enc, zero latency), shared by
every client. Prints "ready rtsp://127.0.0.1:PORT/cam" once it listens, and exits 2 when the port
cannot be bound (server.attach returns 0 without raising in that case, so it is checked).
The tests start it and stop it (SIGKILL, or SIGSTOP/SIGCONT to hang it) by its PID.
"""
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> int:
    port = int(sys.argv[1])
    width, height = (int(v) for v in (sys.argv[2] if len(sys.argv) > 2 else "320x240").split("x"))
    fps = int(sys.argv[3]) if len(sys.argv) > 3 else 10
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f"( videotestsrc is-live=true pattern=ball ! video/x-raw,width={width},height={height},framerate={fps}/1 "
        f"! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} ! rtph264pay name=pay0 pt=96 )")
    factory.set_shared(True)
    server.get_mount_points().add_factory("/cam", factory)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{port}", file=sys.stderr, flush=True)
        return 2
    print(f"ready rtsp://127.0.0.1:{port}/cam", flush=True)
    GLib.MainLoop().run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
