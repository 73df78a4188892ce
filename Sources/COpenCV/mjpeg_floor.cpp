// COpenCV: the live benchmark's floor, a plain MJPEG sender in C. See COpenCV.h.
#include "COpenCV.h"

#include <arpa/inet.h>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace {

volatile sig_atomic_t floor_stop = 0;
void floor_on_signal(int) { floor_stop = 1; }

struct FloorClient {
    int fd = -1;
    int stream = -1;        // -1 until its request head is read
    char head[2048];
    size_t head_len = 0;
};

uint64_t now_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

bool send_all(int fd, const void *data, size_t n) {
    const char *p = static_cast<const char *>(data);
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        p += w;
        n -= size_t(w);
    }
    return true;
}

}  // namespace

extern "C" int rc_mjpeg_floor_serve(int port, const uint8_t *jpeg, size_t jpeg_len, int streams, double fps,
                                    char *msg, size_t msg_len) {
    signal(SIGTERM, floor_on_signal);
    signal(SIGINT, floor_on_signal);
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(uint16_t(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(listener, reinterpret_cast<sockaddr *>(&addr), sizeof addr) != 0 || listen(listener, 128) != 0) {
        snprintf(msg, msg_len, "cannot listen on 127.0.0.1:%d: %s", port, strerror(errno));
        close(listener);
        return RC_FAIL;
    }
    enum { kMax = 256 };
    static FloorClient clients[kMax];
    const uint64_t interval = uint64_t(1e9 / fps);
    uint64_t next_due = now_ns() + interval;
    uint64_t frame = 0;
    static const char response[] =
        "HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=ringcapframe\r\n"
        "Cache-Control: no-store\r\nTransfer-Encoding: chunked\r\n\r\n";
    while (!floor_stop) {
        pollfd fds[kMax + 1];
        int n = 0;
        fds[n++] = {listener, POLLIN, 0};
        for (auto &c : clients) {
            if (c.fd >= 0 && c.stream < 0) fds[n++] = {c.fd, POLLIN, 0};
        }
        uint64_t now = now_ns();
        int wait_ms = next_due > now ? int((next_due - now) / 1000000) : 0;
        poll(fds, nfds_t(n), wait_ms);
        if (fds[0].revents & POLLIN) {
            int fd = accept(listener, nullptr, nullptr);
            bool placed = false;
            for (auto &c : clients) {
                if (c.fd < 0 && fd >= 0) {
                    c = FloorClient();
                    c.fd = fd;
                    placed = true;
                    break;
                }
            }
            if (!placed && fd >= 0) close(fd);
        }
        for (auto &c : clients) {
            if (c.fd < 0 || c.stream >= 0) continue;
            ssize_t r = recv(c.fd, c.head + c.head_len, sizeof c.head - 1 - c.head_len, MSG_DONTWAIT);
            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
                close(c.fd);
                c.fd = -1;
                continue;
            }
            if (r > 0) c.head_len += size_t(r);
            c.head[c.head_len] = 0;
            if (strstr(c.head, "\r\n\r\n")) {
                // The stream is the camera's number in the path (/api/cameras/cam1/...), else 0.
                const char *cam = strstr(c.head, "cam");
                c.stream = cam ? (cam[3] - '0') % (streams > 0 ? streams : 1) : 0;
                if (c.stream < 0) c.stream = 0;
                if (!send_all(c.fd, response, sizeof response - 1)) {
                    close(c.fd);
                    c.fd = -1;
                }
            }
        }
        if (now_ns() < next_due) continue;
        next_due += interval;
        frame++;
        // Every stream's frame, the same bytes to each of its viewers: one chunk per part.
        char part[256];
        timespec wall;
        clock_gettime(CLOCK_REALTIME, &wall);
        int head_len = snprintf(part, sizeof part,
                                "--ringcapframe\r\nContent-Type: image/jpeg\r\nContent-Length: %zu\r\nX-Timestamp: %lld.%06ld\r\n\r\n",
                                jpeg_len, static_cast<long long>(wall.tv_sec), wall.tv_nsec / 1000);
        char chunk_head[32];
        int chunk_len = snprintf(chunk_head, sizeof chunk_head, "%zx\r\n", size_t(head_len) + jpeg_len + 2);
        for (auto &c : clients) {
            if (c.fd < 0 || c.stream < 0) continue;
            bool ok = send_all(c.fd, chunk_head, size_t(chunk_len)) && send_all(c.fd, part, size_t(head_len)) &&
                      send_all(c.fd, jpeg, jpeg_len) && send_all(c.fd, "\r\n\r\n", 4);
            if (!ok) {
                close(c.fd);
                c.fd = -1;
            }
        }
    }
    for (auto &c : clients) {
        if (c.fd >= 0) close(c.fd);
        c.fd = -1;
    }
    close(listener);
    return RC_OK;
}
