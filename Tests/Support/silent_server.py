#!/usr/bin/python3
"""A camera that hangs: accepts TCP connections on 127.0.0.1:PORT and never answers.

Usage: silent_server.py PORT
Prints "ready tcp://127.0.0.1:PORT" once it listens. Keeps every connection open, reading and
discarding what comes, until it is stopped by its PID.
"""
import socket
import sys
import threading


def drain(conn: socket.socket) -> None:
    try:
        while conn.recv(4096):
            pass
    except OSError:
        pass


def main() -> int:
    port = int(sys.argv[1])
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(64)
    print(f"ready tcp://127.0.0.1:{port}", flush=True)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=drain, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
