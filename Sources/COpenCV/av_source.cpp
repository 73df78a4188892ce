// The C++ side of RCAVSource.h: libavformat/libavcodec/libswscale used directly. Every entry point
// catches every exception: nothing may unwind into Swift. See the header for what each promises.
#include "COpenCV.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>
}

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <new>

namespace {

// COpenCV.h's and RCAVSource.h's status codes, under short names.
constexpr int kOK = RC_OK, kEnd = RC_END, kFail = RC_FAIL, kBadFrame = RC_AV_BAD_FRAME;

// The only shared mutable state: handles share no lock, so one hung camera blocks no other.
std::atomic<rc_av_log_sink> g_sink{nullptr};
// The camera whose rc_av_* call is running on this thread: FFmpeg's messages from contexts that
// carry no tag (URLContext, swscale, RTSP's inner contexts) are attributed through it.
thread_local int tl_tag = -1;

struct TagScope {  // restores the previous tag so that later messages on the thread are not misattributed
    int saved;
    explicit TagScope(int tag) : saved(tl_tag) { tl_tag = tag; }
    ~TagScope() { tl_tag = saved; }
};

// Tags ride in the contexts' `opaque` as tag+1, so that a NULL opaque (a context we did not make,
// e.g. OpenCV's) reads as "no tag here".
void *tag_opaque(int tag) { return reinterpret_cast<void *>(static_cast<intptr_t>(tag) + 1); }

int64_t now_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);  // wall-clock steps must not fire or stretch timeouts
    return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

__attribute__((format(printf, 3, 4))) void put(char *msg, size_t len, const char *fmt, ...) {
    if (len == 0) return;
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(msg, len, fmt, ap);
    va_end(ap);
}

void put_av(char *msg, size_t len, const char *what, int err) {
    char text[AV_ERROR_MAX_STRING_SIZE];
    av_strerror(err, text, sizeof text);
    put(msg, len, "%s: %s", what, text);
}

template <typename Body> int guarded(char *msg, size_t len, Body &&body) {
    try {
        return body();
    } catch (...) {
        put(msg, len, "unexpected C++ exception");
    }
    return kFail;
}

void log_callback(void *avcl, int level, const char *fmt, va_list vl) {
    // First, before any work: FFmpeg calls this for every debug and trace message too.
    if ((level & 0xff) > AV_LOG_WARNING) return;  // high bits may carry a colour (AV_LOG_C)
    rc_av_log_sink sink = g_sink.load(std::memory_order_acquire);
    if (!sink) return;
    int tag = tl_tag;  // decoder worker threads see -1 unless they log through the codec context
    if (avcl) {
        const AVClass *cls = *static_cast<const AVClass *const *>(avcl);
        void *opaque = nullptr;
        if (cls && cls->class_name) {
            if (!std::strcmp(cls->class_name, "AVFormatContext")) opaque = static_cast<AVFormatContext *>(avcl)->opaque;
            else if (!std::strcmp(cls->class_name, "AVCodecContext")) opaque = static_cast<AVCodecContext *>(avcl)->opaque;
        }
        if (opaque) tag = int(reinterpret_cast<intptr_t>(opaque) - 1);
    }
    // Some messages come in pieces ("Packet corrupt (...)" then ".\n"): a piece without its newline
    // waits in this thread's buffer, so that the sink gets whole lines. Static storage, no allocation.
    thread_local char pending[512];
    thread_local size_t pending_len = 0;
    thread_local int pending_tag = -1, pending_level = AV_LOG_WARNING;
    char piece[512];
    int print_prefix = pending_len == 0;  // "[h264 @ 0x...]" only at the start of a line
    av_log_format_line2(avcl, level, fmt, vl, piece, sizeof piece, &print_prefix);
    if (pending_len == 0) pending_tag = tag, pending_level = level & 0xff;
    else if ((level & 0xff) < pending_level) pending_level = level & 0xff;
    size_t n = std::strlen(piece);
    const bool whole = n > 0 && piece[n - 1] == '\n';
    n = std::min(n, sizeof pending - 1 - pending_len);  // an over-long line is cut, never split
    std::memcpy(pending + pending_len, piece, n);
    pending_len += n;
    pending[pending_len] = '\0';
    if (!whole && pending_len < sizeof pending - 1) return;
    for (char *line = pending, *end; *line; line = end) {  // a message may also hold several lines
        end = line + std::strcspn(line, "\r\n");
        const bool more = *end != '\0';
        *end = '\0';
        if (end > line) sink(pending_tag, pending_level, line);
        if (more) end++;
    }
    pending_len = 0;
}

}  // namespace

// A swscale context and what it was made for: the frame's own size, format, range and colour
// space, and the output size. Keyed on the frame, never on codecpar: a resolution change just gets
// a new context (OpenCV's failure was to keep the first one).
struct Converter {
    SwsContext *ctx = nullptr;
    int key[7] = {};
};

// The frame's pixel format, with the deprecated JPEG formats as the plain YUV they are at full
// range (swscale warns about them otherwise), and whether it is full range.
AVPixelFormat source_format(const AVFrame *f, int *full) {
    *full = f->color_range == AVCOL_RANGE_JPEG;
    switch (AVPixelFormat(f->format)) {
    case AV_PIX_FMT_YUVJ420P: *full = 1; return AV_PIX_FMT_YUV420P;
    case AV_PIX_FMT_YUVJ422P: *full = 1; return AV_PIX_FMT_YUV422P;
    case AV_PIX_FMT_YUVJ444P: *full = 1; return AV_PIX_FMT_YUV444P;
    case AV_PIX_FMT_YUVJ440P: *full = 1; return AV_PIX_FMT_YUV440P;
    case AV_PIX_FMT_YUVJ411P: *full = 1; return AV_PIX_FMT_YUV411P;
    default: return AVPixelFormat(f->format);
    }
}

// The context converting frame `f` to `to` at ow x oh, made anew only when the key changes, with
// the source's colour space and range; to I420, full range BT.601 as JPEG wants it. Null with the
// reason in msg when swscale cannot.
SwsContext *converter_for(Converter &c, const AVFrame *f, int ow, int oh, AVPixelFormat to, char *msg, size_t len) {
    int full;
    const AVPixelFormat format = source_format(f, &full);
    const int key[7] = {f->width, f->height, int(format), full, int(f->colorspace), ow, oh};
    if (c.ctx && std::memcmp(key, c.key, sizeof key) == 0) return c.ctx;
    const int flags = ow < f->width || oh < f->height ? SWS_AREA : SWS_BILINEAR;
    c.ctx = sws_getCachedContext(c.ctx, f->width, f->height, format, ow, oh, to, flags, nullptr, nullptr, nullptr);
    if (!c.ctx) {
        const char *name = av_get_pix_fmt_name(format);
        put(msg, len, "cannot convert %dx%d %s to %dx%d %s", f->width, f->height, name ? name : "?", ow, oh,
            to == AV_PIX_FMT_BGR24 ? "BGR" : "I420");
        return nullptr;
    }
    std::memcpy(c.key, key, sizeof key);
    int *inv, *table, src_range, dst_range, brightness, contrast, saturation;
    if (sws_getColorspaceDetails(c.ctx, &inv, &src_range, &table, &dst_range, &brightness, &contrast, &saturation) >= 0) {
        const AVPixFmtDescriptor *desc = av_pix_fmt_desc_get(format);
        if (desc && !(desc->flags & AV_PIX_FMT_FLAG_RGB)) {
            inv = const_cast<int *>(sws_getCoefficients(f->colorspace));
            src_range = full;
        }
        if (to == AV_PIX_FMT_YUV420P) {
            table = const_cast<int *>(sws_getCoefficients(SWS_CS_ITU601));
            dst_range = 1;
        }
        sws_setColorspaceDetails(c.ctx, inv, src_range, table, dst_range, brightness, contrast, saturation);
    }
    return c.ctx;
}

struct rc_av_source {
    rc_av_params p{};
    std::atomic<bool> abort{false};
    std::atomic<int64_t> deadline{0};  // CLOCK_MONOTONIC ns after which I/O is interrupted; 0: none
    std::atomic<bool> timed_out{false};
    std::atomic<int64_t> undecodable{0};
    AVFormatContext *fmt = nullptr;
    AVCodecContext *dec = nullptr;
    AVPacket *pkt = nullptr;  // allocated once and reused: nothing is allocated per frame here
    AVFrame *frame = nullptr;
    Converter to_bgr, to_i420;  // swscale, when a frame cannot be handed over as it is
    int stream = -1;
    int read_error = 0;  // a file's read error other than EOF, reported with its end
    int drain_errors = 0;  // damaged frames met while draining the decoder at the end of a file
    // Passthrough: the stream's packets are JPEGs and are handed over as they came, undecoded.
    bool packet_mode = false, have_packet = false;
    bool opened = false, failed = false, have_frame = false, pending = false, draining = false, ended = false;
    int width = 0, height = 0;  // what rc_av_frame_size reports
    char failure[160] = "";  // the first grab failure: demuxer state is not to be trusted after it

    ~rc_av_source() {
        sws_freeContext(to_bgr.ctx);
        sws_freeContext(to_i420.ctx);
        av_frame_free(&frame);
        av_packet_free(&pkt);
        avcodec_free_context(&dec);
        avformat_close_input(&fmt);  // also frees a context that was allocated but never opened
    }
};

namespace {

// FFmpeg polls this from inside every blocking read/connect (about every 100 ms), on the thread
// doing the I/O; the abort flag is the one thing written from other threads.
int interrupt_cb(void *opaque) {
    auto *s = static_cast<rc_av_source *>(opaque);
    if (s->abort.load(std::memory_order_relaxed)) return 1;
    int64_t d = s->deadline.load(std::memory_order_relaxed);
    if (d != 0 && now_ns() >= d) {
        s->timed_out.store(true, std::memory_order_relaxed);
        return 1;
    }
    return 0;
}

void arm(rc_av_source *s, int64_t deadline) {
    s->timed_out.store(false, std::memory_order_relaxed);
    s->deadline.store(deadline, std::memory_order_relaxed);
}

void disarm(rc_av_source *s) { s->deadline.store(0, std::memory_order_relaxed); }  // keeps timed_out for the message

int64_t deadline_after(const rc_av_source *s, int ms) { return s->p.is_live && ms > 0 ? now_ns() + int64_t(ms) * 1000000 : 0; }

// The reason an I/O call failed: our own interrupt first (FFmpeg only says "Immediate exit requested").
int io_failure(rc_av_source *s, int err, const char *what, const char *timeout_text, int timeout_ms, char *msg, size_t len) {
    if (s->abort.load()) put(msg, len, "interrupted");
    else if (s->timed_out.load()) put(msg, len, timeout_text, timeout_ms / 1000.0);
    else put_av(msg, len, what, err);
    return kFail;
}

int open_input(rc_av_source *s, const char *url, int *av_error, char *msg, size_t len) {
    if (s->fmt) {
        put(msg, len, "already opened");
        return kFail;
    }
    auto fail = [&](int err, const char *text) {
        *av_error = err;
        if (text) put_av(msg, len, text, err);
        return kFail;
    };
    if (!(s->fmt = avformat_alloc_context())) return fail(AVERROR(ENOMEM), "cannot open");
    // Set before avformat_open_input so that the connect itself can be interrupted.
    s->fmt->interrupt_callback = AVIOInterruptCB{interrupt_cb, s};
    s->fmt->opaque = tag_opaque(s->p.tag);
    AVDictionary *opts = nullptr;
    if (s->p.is_live && !std::strncmp(url, "rtsp", 4)) av_dict_set(&opts, "rtsp_transport", s->p.rtsp_tcp ? "tcp" : "udp", 0);
    // A live stream's rate is not worth waiting for: probing it held the open of a 10 fps RTSP
    // camera for about 3 s (20 frames), and the frames read meanwhile came out seconds old.
    if (s->p.is_live) av_dict_set(&opts, "fpsprobesize", "0", 0);
    // One deadline for connect and stream info together: open_timeout bounds the whole open.
    arm(s, deadline_after(s, s->p.open_timeout_ms));
    int r = avformat_open_input(&s->fmt, url, nullptr, &opts);  // frees and NULLs fmt on failure
    av_dict_free(&opts);
    if (r >= 0) {
        r = avformat_find_stream_info(s->fmt, nullptr);
        // Interrupted stream probing can still "succeed" with half-known streams: do not trust it.
        if (r >= 0 && (s->abort.load() || s->timed_out.load())) r = AVERROR_EXIT;
    }
    disarm(s);
    if (r < 0) {
        // FFmpeg's own code for an interrupted call varies (RTSP says "Invalid data"): say what happened.
        *av_error = s->abort.load() ? AVERROR_EXIT : s->timed_out.load() ? AVERROR(ETIMEDOUT) : r;
        return io_failure(s, r, s->fmt ? "cannot read the stream's parameters" : "cannot open",
                          "timed out after %.1f s opening", s->p.open_timeout_ms, msg, len);
    }
    const AVCodec *codec = nullptr;
    r = av_find_best_stream(s->fmt, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
    if (r == AVERROR_STREAM_NOT_FOUND) {
        put(msg, len, "no video stream");
        return fail(r, nullptr);
    }
    if (r < 0) return fail(r, "no decoder for the video stream");
    s->stream = r;
    AVStream *st = s->fmt->streams[r];
    for (unsigned i = 0; i < s->fmt->nb_streams; i++)  // spares demuxing audio and data we would drop
        if (int(i) != s->stream) s->fmt->streams[i]->discard = AVDISCARD_ALL;
    if (!(s->dec = avcodec_alloc_context3(codec))) return fail(AVERROR(ENOMEM), "cannot open the decoder");
    if ((r = avcodec_parameters_to_context(s->dec, st->codecpar)) < 0) return fail(r, "cannot open the decoder");
    s->dec->pkt_timebase = st->time_base;
    // The caller's share of the machine (0: FFmpeg's own count, one per usable CPU, which a
    // pinned thread's mask limits). Two file cameras on two cores, each decoding with three frame
    // threads beside two writers, wrote 14 % fewer frames/s than with one thread each, and held
    // every frame back by the frames in flight (p50 grab-to-disk 250 ms against 7 ms).
    s->dec->thread_count = s->p.threads > 0 ? s->p.threads : 0;
    // Frame threads hold frames back (two at 2 cores: 200 ms at 10 fps), which a live camera must
    // not; a file wants their throughput.
    s->dec->thread_type = s->p.is_live ? FF_THREAD_SLICE : FF_THREAD_FRAME | FF_THREAD_SLICE;
    s->dec->opaque = tag_opaque(s->p.tag);  // frame threads copy it, so their messages keep the tag
    if ((r = avcodec_open2(s->dec, codec, nullptr)) < 0) return fail(r, "cannot open the decoder");
    if (!(s->pkt = av_packet_alloc()) || !(s->frame = av_frame_alloc())) return fail(AVERROR(ENOMEM), "cannot open");
    s->packet_mode = s->p.packets && st->codecpar->codec_id == AV_CODEC_ID_MJPEG;
    s->width = s->p.width > 0 && s->p.height > 0 ? s->p.width : st->codecpar->width;
    s->height = s->p.width > 0 && s->p.height > 0 ? s->p.height : st->codecpar->height;
    s->opened = true;
    *av_error = 0;
    return kOK;
}

int grab_once(rc_av_source *s, char *msg, size_t len);

// A fast look at a JPEG without decoding it: SOI first, a frame header (SOF) before the scan, and
// EOI at the end (a few bytes of padding after it allowed, as AVI pads to even sizes). Gives the
// frame's size and whether it carries its own Huffman tables (DHT): many webcams leave them out
// and rely on the decoder's defaults, and such a file is no JPEG on its own.
bool parse_jpeg(const uint8_t *d, size_t n, int *w, int *h, bool *tables) {
    *w = *h = 0;
    *tables = false;
    if (!d || n < 8 || d[0] != 0xFF || d[1] != 0xD8) return false;
    size_t i = 2;
    bool sof = false;
    while (i + 4 <= n) {
        if (d[i] != 0xFF) return false;
        const uint8_t m = d[i + 1];
        if (m == 0xFF) { i++; continue; }  // fill byte
        if (m == 0x01 || (m >= 0xD0 && m <= 0xD7)) { i += 2; continue; }
        const size_t segment = size_t(d[i + 2]) << 8 | d[i + 3];
        if (segment < 2 || i + 2 + segment > n) return false;
        if (m == 0xC4) *tables = true;
        if (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC) {
            if (segment < 7) return false;
            *h = int(d[i + 5]) << 8 | d[i + 6];
            *w = int(d[i + 7]) << 8 | d[i + 8];
            sof = true;
        }
        if (m == 0xDA) {
            // The scan: the headers are all seen. EOI must follow it, anywhere up to the end
            // (cameras pad their parts): entropy-coded data never holds FF D9, and starting
            // from the scan keeps an EXIF thumbnail's EOI out.
            if (!sof || *w <= 0 || *h <= 0) return false;
            for (size_t k = n; k >= i + 4; k--)
                if (d[k - 2] == 0xFF && d[k - 1] == 0xD9) return true;
            return false;
        }
        i += 2 + segment;
    }
    return false;
}

int grab(rc_av_source *s, char *msg, size_t len) {
    if (s->failed) {
        put(msg, len, "%s", s->failure[0] ? s->failure : "failed before");
        return kFail;
    }
    int r = grab_once(s, msg, len);
    if (r == kFail && s->opened) {
        s->failed = true;
        if (len > 0) std::snprintf(s->failure, sizeof s->failure, "%s", msg);
    }
    return r;
}

int grab_once(rc_av_source *s, char *msg, size_t len) {
    if (!s->opened) {
        put(msg, len, "not open");
        return kFail;
    }
    if (s->abort.load()) {
        put(msg, len, "interrupted");
        return kFail;
    }
    if (s->ended) {
        put(msg, len, "end of file");  // the first RC_END said whether a read error ended it
        return kEnd;
    }
    s->have_frame = false;
    if (s->have_packet) {  // the previous passthrough frame is done with
        av_packet_unref(s->pkt);
        s->have_packet = false;
    }
    // One deadline for the whole grab, also armed in every av_read_frame: packets that arrive
    // but never decode (broken JPEGs) must not keep a dead camera alive.
    const int timeout_ms = s->p.read_timeout_ms;
    const int64_t limit = deadline_after(s, timeout_ms);
    bool got_packet = false;
    auto timed_out = [&] {
        put(msg, len, got_packet ? "no decodable frame for %.1f s" : "timed out after %.1f s waiting for data", timeout_ms / 1000.0);
        return kFail;
    };
    for (;;) {
        int r = avcodec_receive_frame(s->dec, s->frame);  // decoders hold frames back (threads, B-frames)
        if (r == 0) {
            s->have_frame = true;
            if (s->p.width <= 0 || s->p.height <= 0) {  // each frame's own size: it may change mid-stream
                s->width = s->frame->width;
                s->height = s->frame->height;
            }
            return kOK;
        }
        if (s->draining && r != AVERROR_EOF && r != AVERROR(EAGAIN)) {
            // A damaged frame while draining: frame threads may still hold good ones behind it.
            s->undecodable++;
            if (++s->drain_errors < 64) continue;
        }
        if (r == AVERROR_EOF || s->draining) {  // draining: anything but a frame means nothing is left
            s->ended = true;
            if (s->read_error) put_av(msg, len, "ended early on a read error", s->read_error);
            else put(msg, len, "end of file");
            return kEnd;
        }
        if (r != AVERROR(EAGAIN)) s->undecodable++;  // frame-threaded and MJPEG decoders report errors here
        if (s->pending) {  // the decoder refused it with EAGAIN before; it has given a frame since
            r = avcodec_send_packet(s->dec, s->pkt);
            if (r == AVERROR(EAGAIN)) continue;
            s->pending = false;
            av_packet_unref(s->pkt);
            if (r < 0) s->undecodable++;
            continue;
        }
        if (limit != 0 && now_ns() >= limit) return timed_out();
        arm(s, limit);
        r = av_read_frame(s->fmt, s->pkt);
        disarm(s);
        if (r == AVERROR(EAGAIN)) continue;
        if (r < 0) {
            if (s->abort.load()) {
                put(msg, len, "interrupted");
                return kFail;
            }
            if (s->timed_out.load()) return timed_out();
            if (s->p.is_live) {
                if (r == AVERROR_EOF) put(msg, len, "the stream ended");
                else put_av(msg, len, "cannot read", r);
                return kFail;
            }
            // A file: EOF (or a damaged tail) flushes the decoder so that its last frames come out.
            if (r != AVERROR_EOF) s->read_error = r;
            avcodec_send_packet(s->dec, nullptr);
            s->draining = true;
            continue;
        }
        if (s->pkt->stream_index != s->stream) {
            av_packet_unref(s->pkt);
            continue;
        }
        got_packet = true;
        if (s->packet_mode) {
            int w, h;
            bool tables;
            if (!parse_jpeg(s->pkt->data, size_t(s->pkt->size), &w, &h, &tables)) {
                put(msg, len, "the camera sent %d bytes that are not a whole JPEG", s->pkt->size);
                av_packet_unref(s->pkt);
                s->undecodable++;
                return kBadFrame;
            }
            // Without its own Huffman tables a frame is not a JPEG on its own: from this frame
            // on, decode and encode this camera's frames instead.
            if (!tables) s->packet_mode = false;
            if (s->packet_mode) {
                s->width = w;
                s->height = h;
                s->have_packet = true;
                return kOK;
            }
        }
        r = avcodec_send_packet(s->dec, s->pkt);
        if (r == AVERROR(EAGAIN)) {  // cannot happen after receive gave EAGAIN, but keep the packet
            s->pending = true;
            continue;
        }
        av_packet_unref(s->pkt);
        if (r < 0) s->undecodable++;  // rejected (AVERROR_INVALIDDATA etc.): skip it and read on
    }
}

int retrieve(rc_av_source *s, uint8_t *dst, size_t stride, char *msg, size_t len) {
    if (!s->have_frame) {
        put(msg, len, "no frame grabbed");
        return kFail;
    }
    const AVFrame *f = s->frame;
    const int ow = s->width, oh = s->height;
    if (stride < size_t(ow) * 3 || stride > size_t(INT32_MAX)) {
        put(msg, len, "stride %zu too small for %d pixels of BGR", stride, ow);
        return kFail;
    }
    SwsContext *ctx = converter_for(s->to_bgr, f, ow, oh, AV_PIX_FMT_BGR24, msg, len);
    if (!ctx) return kFail;
    uint8_t *const planes[4] = {dst, nullptr, nullptr, nullptr};
    const int strides[4] = {int(stride), 0, 0, 0};
    if (sws_scale(ctx, f->data, f->linesize, 0, f->height, planes, strides) <= 0) {
        put(msg, len, "swscale could not convert the frame");
        return kFail;
    }
    return kOK;
}

}  // namespace

extern "C" int rc_av_create(const rc_av_params *params, rc_av_source **out, char *msg, size_t msg_len) {
    *out = nullptr;
    return guarded(msg, msg_len, [&] {
        auto *s = new (std::nothrow) rc_av_source();
        if (!s) {
            put(msg, msg_len, "out of memory");
            return kFail;
        }
        s->p = *params;
        *out = s;
        return kOK;
    });
}

extern "C" int rc_av_open_input(rc_av_source *src, const char *url, int *av_error, char *msg, size_t msg_len) {
    *av_error = AVERROR_UNKNOWN;
    TagScope scope(src->p.tag);
    return guarded(msg, msg_len, [&] { return open_input(src, url, av_error, msg, msg_len); });
}

extern "C" int rc_av_open(const char *url, const rc_av_params *params, rc_av_source **out, int *av_error,
                          char *msg, size_t msg_len) {
    *av_error = AVERROR_UNKNOWN;
    rc_av_source *s = nullptr;
    if (rc_av_create(params, &s, msg, msg_len) != kOK) return kFail;
    if (rc_av_open_input(s, url, av_error, msg, msg_len) != kOK) {
        rc_av_destroy(s);
        *out = nullptr;
        return kFail;
    }
    *out = s;
    return kOK;
}

extern "C" void rc_av_destroy(rc_av_source *src) {
    if (!src) return;
    TagScope scope(src->p.tag);  // closing can log
    // RTSP sends TEARDOWN on close (cheap cameras have few session slots): let it, but never let a
    // hung camera hold its owner here for long.
    arm(src, deadline_after(src, 500));
    try {
        delete src;
    } catch (...) {
    }
}

extern "C" void rc_av_interrupt(rc_av_source *src) { src->abort.store(true); }

extern "C" int rc_av_grab(rc_av_source *src, char *msg, size_t msg_len) {
    TagScope scope(src->p.tag);
    return guarded(msg, msg_len, [&] { return grab(src, msg, msg_len); });
}

extern "C" int rc_av_is_passthrough(const rc_av_source *src) { return src->packet_mode ? 1 : 0; }

extern "C" int rc_av_packet(const rc_av_source *src, const uint8_t **data, size_t *size) {
    if (!src->have_packet) return kFail;
    *data = src->pkt->data;
    *size = size_t(src->pkt->size);
    return kOK;
}

extern "C" void rc_av_frame_size(const rc_av_source *src, int *width, int *height) {
    *width = src->width;
    *height = src->height;
}

// A limited-range (16-235, 16-240) plane row to full range (0-255), as JPEG's YCbCr wants it. In
// integers a compiler vectorises: 255/219 is 1192/1024, 255/224 is 1166/1024, both within 0.05 %.
void expand_luma(const uint8_t *src, uint8_t *dst, int n) {
    for (int i = 0; i < n; ++i) {
        int v = ((int(src[i]) - 16) * 1192 + 512) >> 10;
        dst[i] = uint8_t(v < 0 ? 0 : v > 255 ? 255 : v);
    }
}
void expand_chroma(const uint8_t *src, uint8_t *dst, int n) {
    for (int i = 0; i < n; ++i) {
        int v = (((int(src[i]) - 128) * 1166 + 512) >> 10) + 128;
        dst[i] = uint8_t(v < 0 ? 0 : v > 255 ? 255 : v);
    }
}

int retrieve_i420(rc_av_source *s, const rc_i420 *d, char *msg, size_t len) {
    if (!s->have_frame) {
        put(msg, len, "no frame grabbed");
        return kFail;
    }
    const AVFrame *f = s->frame;
    const int ow = s->width, oh = s->height;
    if (d->width != ow || d->height != oh || !d->y || !d->u || !d->v) {
        put(msg, len, "an I420 buffer of %dx%d for a frame of %dx%d", d->width, d->height, ow, oh);
        return kFail;
    }
    int full;
    if (source_format(f, &full) == AV_PIX_FMT_YUV420P && f->width == ow && f->height == oh) {
        // The decoder's own planes: copied as they are (full range) or stretched to full range.
        const int cw = (ow + 1) / 2, ch = (oh + 1) / 2;
        for (int y = 0; y < oh; ++y) {
            const uint8_t *src = f->data[0] + ptrdiff_t(y) * f->linesize[0];
            uint8_t *dst = d->y + size_t(y) * d->y_stride;
            if (full) std::memcpy(dst, src, size_t(ow)); else expand_luma(src, dst, ow);
        }
        for (int y = 0; y < ch; ++y) {
            for (int c = 1; c <= 2; ++c) {
                const uint8_t *src = f->data[c] + ptrdiff_t(y) * f->linesize[c];
                uint8_t *dst = (c == 1 ? d->u : d->v) + size_t(y) * d->c_stride;
                if (full) std::memcpy(dst, src, size_t(cw)); else expand_chroma(src, dst, cw);
            }
        }
        return kOK;
    }
    // Another size (--size), subsampling or format: swscale, to full-range I420.
    SwsContext *ctx = converter_for(s->to_i420, f, ow, oh, AV_PIX_FMT_YUV420P, msg, len);
    if (!ctx) return kFail;
    uint8_t *const planes[4] = {d->y, d->u, d->v, nullptr};
    const int strides[4] = {int(d->y_stride), int(d->c_stride), int(d->c_stride), 0};
    if (sws_scale(ctx, f->data, f->linesize, 0, f->height, planes, strides) <= 0) {
        put(msg, len, "swscale could not convert the frame");
        return kFail;
    }
    return kOK;
}

extern "C" int rc_av_retrieve_i420(rc_av_source *src, const rc_i420 *dst, char *msg, size_t msg_len) {
    TagScope scope(src->p.tag);
    return guarded(msg, msg_len, [&] { return retrieve_i420(src, dst, msg, msg_len); });
}

extern "C" int rc_av_retrieve(rc_av_source *src, uint8_t *dst, size_t stride, char *msg, size_t msg_len) {
    TagScope scope(src->p.tag);
    return guarded(msg, msg_len, [&] { return retrieve(src, dst, stride, msg, msg_len); });
}

extern "C" double rc_av_source_fps(const rc_av_source *src) {
    if (!src->opened) return 0;
    const AVStream *st = src->fmt->streams[src->stream];
    AVRational rate = st->avg_frame_rate.num > 0 && st->avg_frame_rate.den > 0 ? st->avg_frame_rate : st->r_frame_rate;
    double fps = rate.num > 0 && rate.den > 0 ? av_q2d(rate) : 0;
    // Within what ringcap accepts for --fps (0.001 to 1000): a file announcing one frame a
    // year must not turn into an interval that overflows the clocks' arithmetic.
    return std::isfinite(fps) && fps >= 0.001 && fps < 1000 ? fps : 0;
}

extern "C" int64_t rc_av_frame_count(const rc_av_source *src) {
    if (!src->opened || src->p.is_live) return 0;
    const AVStream *st = src->fmt->streams[src->stream];
    if (st->nb_frames > 0) return st->nb_frames;
    double seconds = st->duration != AV_NOPTS_VALUE && st->duration > 0 ? st->duration * av_q2d(st->time_base)
                     : src->fmt->duration != AV_NOPTS_VALUE && src->fmt->duration > 0 ? src->fmt->duration / double(AV_TIME_BASE)
                                                                                       : 0;
    double n = seconds * rc_av_source_fps(src);
    return std::isfinite(n) && n > 0 && n < 1e12 ? int64_t(std::llround(n)) : 0;
}

extern "C" int64_t rc_av_undecodable_packets(const rc_av_source *src) { return src->undecodable.load(std::memory_order_relaxed); }

extern "C" void rc_av_set_log_sink(rc_av_log_sink sink) {
    g_sink.store(sink, std::memory_order_release);
    av_log_set_callback(log_callback);  // idempotent: the callback reads the sink on every message
}
