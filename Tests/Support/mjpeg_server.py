#!/usr/bin/python3
"""An HTTP MJPEG camera on loopback for the tests, as IP cameras serve it.

Usage: mjpeg_server.py PORT FRAME_DIR [FPS] [--garbage] [--damage]
Serves GET /video.mjpg (any query string is ignored) as multipart/x-mixed-replace;
boundary=frame, cycling through the .jpg files of FRAME_DIR (sorted) at FPS (default 10), to any
number of clients at once. With --garbage every part is the size of its JPEG but random bytes (a
camera sending broken frames); with --damage every third part is its JPEG cut in half. Prints "ready http://127.0.0.1:PORT/video.mjpg" once it listens.
The tests stop it by its PID.
"""
import os
import socketserver
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Camera(BaseHTTPRequestHandler):
    frames: list = []
    interval = 0.1
    garbage = False
    damage = False

    def do_GET(self):
        if self.path.split("?", 1)[0] != "/video.mjpg":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        n = 0
        next_due = time.monotonic()
        try:
            while True:
                jpeg = self.frames[n % len(self.frames)]
                if self.garbage:
                    jpeg = os.urandom(len(jpeg))
                elif self.damage and n % 3 == 2:
                    jpeg = jpeg[: len(jpeg) // 2]
                self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\n"
                                 + f"Content-Length: {len(jpeg)}\r\n\r\n".encode() + jpeg + b"\r\n")
                self.wfile.flush()
                n += 1
                next_due += self.interval
                time.sleep(max(0.0, next_due - time.monotonic()))
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args):
        pass


def main() -> int:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    Camera.garbage = "--garbage" in sys.argv[1:]
    Camera.damage = "--damage" in sys.argv[1:]
    port, folder = int(args[0]), args[1]
    fps = float(args[2]) if len(args) > 2 else 10.0
    Camera.frames = [open(os.path.join(folder, f), "rb").read()
                     for f in sorted(os.listdir(folder)) if f.endswith(".jpg")]
    Camera.interval = 1.0 / fps
    if not Camera.frames:
        print(f"no .jpg in {folder}", file=sys.stderr)
        return 2
    socketserver.TCPServer.allow_reuse_address = True
    ThreadingHTTPServer.daemon_threads = True
    server = ThreadingHTTPServer(("127.0.0.1", port), Camera)
    print(f"ready http://127.0.0.1:{port}/video.mjpg", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
