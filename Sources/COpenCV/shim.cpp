// The C++ side of COpenCV.h. Every entry point catches every exception: nothing may unwind
// into Swift. See the header for what each function promises.
#include "COpenCV.h"

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>
#include <csetjmp>
#include <sched.h>
#include <malloc.h>
#include <cerrno>
#include <cstdlib>
#include <algorithm>

// libjpeg's header expects FILE and size_t declared first.
#include <cstdio>
#include <jpeglib.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <new>
#include <string>
#include <vector>

namespace {

void put_message(char *msg, size_t len, const char *text) {
    if (len == 0) return;
    std::snprintf(msg, len, "%s", text);
}

// Runs `body`, turning any exception into RC_FAIL and its text into `msg`.
template <typename Body> int guarded(char *msg, size_t len, Body &&body) {
    try {
        return body();
    } catch (const cv::Exception &e) {
        put_message(msg, len, e.what());
    } catch (const std::exception &e) {
        put_message(msg, len, e.what());
    } catch (...) {
        put_message(msg, len, "unknown C++ exception");
    }
    return RC_FAIL;
}

}  // namespace

struct rc_capture {
    cv::VideoCapture capture;
    cv::Mat decoded;   // the backend's frame when it must be scaled or did not fit; reused
    int want_width = 0, want_height = 0;
    int width = 0, height = 0;  // the size retrieve produces
    bool scale = false;
};

extern "C" int rc_capture_open(const char *source, const rc_capture_params *params, rc_capture **out,
                               char *msg, size_t msg_len) {
    *out = nullptr;
    return guarded(msg, msg_len, [&]() -> int {
        auto cap = new (std::nothrow) rc_capture();
        if (!cap) {
            put_message(msg, msg_len, "out of memory");
            return RC_FAIL;
        }
        bool opened = false;
        switch (params->kind) {
        case RC_SOURCE_DEVICE: {
            std::vector<int> props;
            if (params->width > 0 && params->height > 0) {
                props.insert(props.end(), {cv::CAP_PROP_FRAME_WIDTH, params->width,
                                           cv::CAP_PROP_FRAME_HEIGHT, params->height});
            }
            opened = cap->capture.open(params->device_index, cv::CAP_V4L2, props);
            if (opened && params->fps > 0) cap->capture.set(cv::CAP_PROP_FPS, params->fps);
            break;
        }
        case RC_SOURCE_STREAM: {
            std::vector<int> props;
            if (params->open_timeout_ms > 0) props.insert(props.end(), {cv::CAP_PROP_OPEN_TIMEOUT_MSEC, params->open_timeout_ms});
            if (params->read_timeout_ms > 0) props.insert(props.end(), {cv::CAP_PROP_READ_TIMEOUT_MSEC, params->read_timeout_ms});
            opened = cap->capture.open(source, cv::CAP_FFMPEG, props);
            break;
        }
        case RC_SOURCE_FILE:
            opened = cap->capture.open(source, cv::CAP_FFMPEG);
            break;
        default:
            put_message(msg, msg_len, "unknown source kind");
            delete cap;
            return RC_FAIL;
        }
        if (!opened || !cap->capture.isOpened()) {
            put_message(msg, msg_len, "OpenCV could not open the source");
            delete cap;
            return RC_FAIL;
        }
        int native_w = (int)cap->capture.get(cv::CAP_PROP_FRAME_WIDTH);
        int native_h = (int)cap->capture.get(cv::CAP_PROP_FRAME_HEIGHT);
        if (params->kind != RC_SOURCE_DEVICE && params->width > 0 && params->height > 0) {
            cap->want_width = params->width;
            cap->want_height = params->height;
        }
        if (cap->want_width > 0) {
            cap->width = cap->want_width;
            cap->height = cap->want_height;
            cap->scale = native_w != cap->want_width || native_h != cap->want_height;
        } else {
            cap->width = native_w;
            cap->height = native_h;
        }
        *out = cap;
        return RC_OK;
    });
}

extern "C" void rc_capture_destroy(rc_capture *cap) {
    try {
        delete cap;
    } catch (...) {
    }
}

extern "C" void rc_capture_size(const rc_capture *cap, int *width, int *height) {
    *width = cap->width;
    *height = cap->height;
}

extern "C" double rc_capture_source_fps(const rc_capture *cap) {
    try {
        double fps = cap->capture.get(cv::CAP_PROP_FPS);
        return std::isfinite(fps) && fps > 0 && fps < 1000 ? fps : 0;
    } catch (...) {
        return 0;
    }
}

extern "C" int64_t rc_capture_frame_count(const rc_capture *cap) {
    try {
        double count = cap->capture.get(cv::CAP_PROP_FRAME_COUNT);
        return std::isfinite(count) && count > 0 && count < 1e12 ? (int64_t)count : 0;
    } catch (...) {
        return 0;
    }
}

extern "C" int rc_capture_grab(rc_capture *cap, char *msg, size_t msg_len) {
    return guarded(msg, msg_len, [&]() -> int {
        if (cap->capture.grab()) return RC_OK;
        put_message(msg, msg_len, "no frame");
        return RC_END;  // the caller decides whether an end is a failure (streams) or not (files)
    });
}

extern "C" int rc_capture_retrieve(rc_capture *cap, uint8_t *dst, size_t stride, char *msg, size_t msg_len) {
    return guarded(msg, msg_len, [&]() -> int {
        if (cap->scale) {
            if (!cap->capture.retrieve(cap->decoded) || cap->decoded.empty()) {
                put_message(msg, msg_len, "retrieve gave no frame");
                return RC_FAIL;
            }
            if (cap->decoded.type() != CV_8UC3) {
                put_message(msg, msg_len, "frame is not 8-bit BGR");
                return RC_FAIL;
            }
            cv::Mat target(cap->height, cap->width, CV_8UC3, dst, stride);
            cv::resize(cap->decoded, target, target.size(), 0, 0, cv::INTER_AREA);
            return RC_OK;
        }
        // Decode straight into the caller's buffer: a Mat header over it that already has the
        // right size and type is written in place (Mat::create is a no-op), so there is no copy.
        // If the stream changed size, OpenCV reallocates the header instead: detect that.
        cv::Mat target(cap->height, cap->width, CV_8UC3, dst, stride);
        if (!cap->capture.retrieve(target) || target.empty()) {
            put_message(msg, msg_len, "retrieve gave no frame");
            return RC_FAIL;
        }
        if (target.data != dst) {
            if (target.type() != CV_8UC3) {
                put_message(msg, msg_len, "frame is not 8-bit BGR");
                return RC_FAIL;
            }
            cap->decoded = target;
            cap->width = target.cols;
            cap->height = target.rows;
            return RC_SIZE_CHANGED;
        }
        return RC_OK;
    });
}

extern "C" int rc_capture_copy_frame(rc_capture *cap, uint8_t *dst, size_t stride, char *msg, size_t msg_len) {
    return guarded(msg, msg_len, [&]() -> int {
        if (cap->decoded.empty() || cap->decoded.cols != cap->width || cap->decoded.rows != cap->height) {
            put_message(msg, msg_len, "no kept frame of the current size");
            return RC_FAIL;
        }
        cv::Mat target(cap->height, cap->width, CV_8UC3, dst, stride);
        cap->decoded.copyTo(target);
        cap->decoded.release();
        return RC_OK;
    });
}

// ---- test pattern ----

namespace {

// 5x7 glyphs, one byte a row, low 5 bits used (bit 4 leftmost).
struct Glyph { char c; uint8_t rows[7]; };
const Glyph kGlyphs[] = {
    {'0', {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E}}, {'1', {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E}},
    {'2', {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F}}, {'3', {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E}},
    {'4', {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02}}, {'5', {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E}},
    {'6', {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E}}, {'7', {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08}},
    {'8', {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E}}, {'9', {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C}},
    {':', {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00}}, {'.', {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C}},
    {'#', {0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A}}, {' ', {0, 0, 0, 0, 0, 0, 0}},
};

const Glyph *find_glyph(char c) {
    for (const auto &g : kGlyphs)
        if (g.c == c) return &g;
    return &kGlyphs[sizeof(kGlyphs) / sizeof(kGlyphs[0]) - 1];
}

void fill_rect(uint8_t *dst, size_t stride, int W, int H, int x0, int y0, int w, int h, uint8_t b, uint8_t g,
               uint8_t r) {
    int x1 = std::min(W, x0 + w), y1 = std::min(H, y0 + h);
    x0 = std::max(0, x0);
    y0 = std::max(0, y0);
    for (int y = y0; y < y1; ++y) {
        uint8_t *p = dst + (size_t)y * stride + (size_t)x0 * 3;
        for (int x = x0; x < x1; ++x, p += 3) {
            p[0] = b;
            p[1] = g;
            p[2] = r;
        }
    }
}

}  // namespace

struct rc_pattern {
    int width = 0, height = 0, period = 0;
    std::vector<uint8_t> line;  // (width + period) BGR pixels of a smooth colour cycle
    // The same line in full-range YCbCr (JFIF), for the I420 rendering: luma at every pixel, and
    // the chroma lines of even and of odd offsets subsampled by two, so that a chroma row is one
    // memcpy whatever its offset's parity.
    std::vector<uint8_t> yline, ueven, uodd, veven, vodd;
};

extern "C" rc_pattern *rc_pattern_create(int width, int height) {
    try {
        if (width <= 0 || height <= 0) return nullptr;
        auto p = new rc_pattern();
        p->width = width;
        p->height = height;
        p->period = 480;
        p->line.resize((size_t)(width + p->period) * 3);
        for (int i = 0; i < width + p->period; ++i) {
            double a = 2 * M_PI * (i % p->period) / p->period;
            p->line[(size_t)i * 3 + 0] = (uint8_t)(128 + 100 * std::sin(a));
            p->line[(size_t)i * 3 + 1] = (uint8_t)(128 + 100 * std::sin(a + 2.1));
            p->line[(size_t)i * 3 + 2] = (uint8_t)(128 + 100 * std::sin(a + 4.2));
        }
        const size_t n = (size_t)(width + p->period) + 2;
        std::vector<uint8_t> u(n), v(n);
        p->yline.resize(n);
        for (size_t i = 0; i < n; ++i) {
            const uint8_t *bgr = p->line.data() + std::min(i, (size_t)(width + p->period) - 1) * 3;
            double b = bgr[0], g = bgr[1], r = bgr[2];
            p->yline[i] = (uint8_t)std::lround(std::clamp(0.299 * r + 0.587 * g + 0.114 * b, 0.0, 255.0));
            u[i] = (uint8_t)std::lround(std::clamp(128 - 0.168736 * r - 0.331264 * g + 0.5 * b, 0.0, 255.0));
            v[i] = (uint8_t)std::lround(std::clamp(128 + 0.5 * r - 0.418688 * g - 0.081312 * b, 0.0, 255.0));
        }
        for (auto *line : {&p->ueven, &p->uodd, &p->veven, &p->vodd}) line->reserve(n / 2);  // once each
        for (size_t i = 0; i + 1 < n; i += 2) {
            p->ueven.push_back(u[i]);
            p->veven.push_back(v[i]);
            p->uodd.push_back(u[i + 1]);
            p->vodd.push_back(v[i + 1]);
        }
        return p;
    } catch (...) {
        return nullptr;
    }
}

extern "C" void rc_pattern_destroy(rc_pattern *pattern) { delete pattern; }

namespace {

// The background is the same in every frame (a diagonal colour field: row y is a window into the
// precomputed line), so that a buffer which already holds a frame needs only the box and the
// text band redrawn; see rc_pattern_render_over.
void restore_background(const rc_pattern *p, uint8_t *dst, size_t stride, int x0, int y0, int w, int h) {
    int x1 = std::min(p->width, x0 + w), y1 = std::min(p->height, y0 + h);
    x0 = std::max(0, x0);
    y0 = std::max(0, y0);
    if (x1 <= x0) return;
    for (int y = y0; y < y1; ++y) {
        size_t offset = (size_t)((y / 2) % p->period) + (size_t)x0;
        std::memcpy(dst + (size_t)y * stride + (size_t)x0 * 3, p->line.data() + offset * 3, (size_t)(x1 - x0) * 3);
    }
}

struct Box { int x, y, size; };

// A box bouncing left to right, so that consecutive frames differ visibly.
Box box_of(const rc_pattern *p, uint64_t frame) {
    int box = std::max(8, p->height / 8);
    int span = std::max(1, p->width - box);
    int pos = (int)((frame * 8) % (uint64_t)(2 * span));
    return Box{pos < span ? pos : 2 * span - pos, p->height / 2 - box / 2, box};
}

int text_scale(const rc_pattern *p) { return std::max(1, p->height / 160); }

// "#<frame> HH:MM:SS.mmm": its length depends on the frame number only.
int text_length(uint64_t frame) {
    int digits = 1;
    while (frame >= 10) { frame /= 10; ++digits; }
    return 1 + digits + 13;
}

int band_width(const rc_pattern *p, uint64_t frame) { return (text_length(frame) * 6 + 2) * text_scale(p); }

// What the pattern draws over its background, in order: the box, the text band, each lit glyph
// pixel. `paint(x, y, w, h, what)` paints a rectangle in the frame's own layout (BGR or I420).
enum class Paint { box, band, glyph };

template <typename PaintRect>
void draw_box_and_text(const rc_pattern *p, uint64_t frame, int64_t unix_ns, PaintRect &&paint) {
    Box b = box_of(p, frame);
    paint(b.x, b.y, b.size, b.size, Paint::box);

    // "#<frame> HH:MM:SS.mmm" in a black band, scaled to the frame size.
    char text[48];
    int64_t secs = unix_ns / 1000000000;
    int64_t ms = (unix_ns / 1000000) % 1000;
    if (ms < 0) ms += 1000;
    int64_t day_secs = ((secs % 86400) + 86400) % 86400;
    std::snprintf(text, sizeof text, "#%llu %02d:%02d:%02d.%03d", (unsigned long long)frame, (int)(day_secs / 3600),
                  (int)(day_secs / 60 % 60), (int)(day_secs % 60), (int)ms);
    int scale = text_scale(p);
    int len = (int)std::strlen(text);
    paint(0, 0, (len * 6 + 2) * scale, 9 * scale, Paint::band);
    for (int i = 0; i < len; ++i) {
        const Glyph *g = find_glyph(text[i]);
        for (int row = 0; row < 7; ++row)
            for (int col = 0; col < 5; ++col)
                if (g->rows[row] & (0x10 >> col))
                    paint((1 + i * 6 + col) * scale, (1 + row) * scale, scale, scale, Paint::glyph);
    }
}

void draw_box_and_text(const rc_pattern *p, uint8_t *dst, size_t stride, uint64_t frame, int64_t unix_ns) {
    draw_box_and_text(p, frame, unix_ns, [&](int x, int y, int w, int h, Paint what) {
        const uint8_t v = what == Paint::band ? 0 : 255;  // white box and glyphs, black band
        fill_rect(dst, stride, p->width, p->height, x, y, w, h, v, v, v);
    });
}

}  // namespace

extern "C" void rc_pattern_render(const rc_pattern *p, uint8_t *dst, size_t stride, uint64_t frame, int64_t unix_ns) {
    restore_background(p, dst, stride, 0, 0, p->width, p->height);
    draw_box_and_text(p, dst, stride, frame, unix_ns);
}

extern "C" void rc_pattern_render_over(const rc_pattern *p, uint8_t *dst, size_t stride, uint64_t frame,
                                       int64_t unix_ns, uint64_t previous_frame) {
    Box old = box_of(p, previous_frame);
    restore_background(p, dst, stride, old.x, old.y, old.size, old.size);
    restore_background(p, dst, stride, 0, 0, band_width(p, previous_frame), 9 * text_scale(p));
    draw_box_and_text(p, dst, stride, frame, unix_ns);
}

// ---- the test pattern in I420 ----

extern "C" size_t rc_i420_size(int width, int height) {
    if (width <= 0 || height <= 0) return 0;
    rc_i420 f = rc_i420_layout(nullptr, width, height);
    return f.y_stride * (size_t)height + 2 * f.c_stride * (size_t)((height + 1) / 2);
}

extern "C" rc_i420 rc_i420_layout(uint8_t *base, int width, int height) {
    rc_i420 f{};
    f.width = width;
    f.height = height;
    // Rows padded to the JPEG blocks (16 luma, 8 chroma samples): the raw-data encoder reads
    // whole blocks, and the padding is filled by replicating the last column (rc_jpeg_encode_i420).
    f.y_stride = ((size_t)width + 15) & ~(size_t)15;
    f.c_stride = ((size_t)(width + 1) / 2 + 7) & ~(size_t)7;
    f.y = base;
    f.u = base ? base + f.y_stride * (size_t)height : nullptr;
    f.v = base ? f.u + f.c_stride * (size_t)((height + 1) / 2) : nullptr;
    return f;
}

namespace {

void restore_background_i420(const rc_pattern *p, const rc_i420 *d, int x0, int y0, int w, int h) {
    int x1 = std::min(p->width, x0 + w), y1 = std::min(p->height, y0 + h);
    x0 = std::max(0, x0);
    y0 = std::max(0, y0);
    if (x1 <= x0 || y1 <= y0) return;
    for (int y = y0; y < y1; ++y) {
        size_t offset = (size_t)((y / 2) % p->period) + (size_t)x0;
        std::memcpy(d->y + (size_t)y * d->y_stride + x0, p->yline.data() + offset, (size_t)(x1 - x0));
    }
    // Chroma sample (cx, cy) is the colour at luma (2cx, 2cy): line offset (cy % period) + 2cx.
    const int cx0 = x0 / 2, cx1 = (x1 + 1) / 2, cy0 = y0 / 2, cy1 = (y1 + 1) / 2;
    for (int cy = cy0; cy < cy1; ++cy) {
        const int o = cy % p->period;
        const uint8_t *u = (o % 2 ? p->uodd.data() : p->ueven.data()) + o / 2 + cx0;
        const uint8_t *v = (o % 2 ? p->vodd.data() : p->veven.data()) + o / 2 + cx0;
        std::memcpy(d->u + (size_t)cy * d->c_stride + cx0, u, (size_t)(cx1 - cx0));
        std::memcpy(d->v + (size_t)cy * d->c_stride + cx0, v, (size_t)(cx1 - cx0));
    }
}

// Luma `luma` over the rectangle; its chroma (the samples it touches) set to neutral.
void fill_rect_i420(const rc_i420 *d, int W, int H, int x0, int y0, int w, int h, uint8_t luma, bool chroma) {
    int x1 = std::min(W, x0 + w), y1 = std::min(H, y0 + h);
    x0 = std::max(0, x0);
    y0 = std::max(0, y0);
    if (x1 <= x0 || y1 <= y0) return;
    for (int y = y0; y < y1; ++y) std::memset(d->y + (size_t)y * d->y_stride + x0, luma, (size_t)(x1 - x0));
    if (!chroma) return;
    const int cx0 = x0 / 2, cx1 = (x1 + 1) / 2;
    for (int cy = y0 / 2; cy < (y1 + 1) / 2; ++cy) {
        std::memset(d->u + (size_t)cy * d->c_stride + cx0, 128, (size_t)(cx1 - cx0));
        std::memset(d->v + (size_t)cy * d->c_stride + cx0, 128, (size_t)(cx1 - cx0));
    }
}

void draw_box_and_text_i420(const rc_pattern *p, const rc_i420 *d, uint64_t frame, int64_t unix_ns) {
    draw_box_and_text(p, frame, unix_ns, [&](int x, int y, int w, int h, Paint what) {
        // Glyphs lie inside the band, whose chroma is neutral already: luma alone.
        fill_rect_i420(d, p->width, p->height, x, y, w, h, what == Paint::band ? 0 : 255, what != Paint::glyph);
    });
}

}  // namespace

extern "C" void rc_pattern_render_i420(const rc_pattern *p, const rc_i420 *dst, uint64_t frame, int64_t unix_ns) {
    restore_background_i420(p, dst, 0, 0, p->width, p->height);
    draw_box_and_text_i420(p, dst, frame, unix_ns);
}

extern "C" void rc_pattern_render_i420_over(const rc_pattern *p, const rc_i420 *dst, uint64_t frame, int64_t unix_ns,
                                            uint64_t previous_frame) {
    Box old = box_of(p, previous_frame);
    restore_background_i420(p, dst, old.x, old.y, old.size, old.size);
    restore_background_i420(p, dst, 0, 0, band_width(p, previous_frame), 9 * text_scale(p));
    draw_box_and_text_i420(p, dst, frame, unix_ns);
}

// ---- JPEG ----
//
// libjpeg-turbo through its libjpeg API, not the TurboJPEG API: tjCompress2 mallocs a row-pointer
// array and libjpeg's per-image memory pool (about nine blocks) on every call. Here the row
// pointers are ours, and libjpeg's memory manager (a table of function pointers) is wrapped so
// that everything it allocates for one image (JPOOL_IMAGE) comes from an arena that is reset,
// not freed, when the image is done. The arena grows only when a bigger image needs more; until
// then an allocation that does not fit falls back to libjpeg's own manager for that image.

namespace {

struct JPEGErrorManager {
    jpeg_error_mgr pub;
    jmp_buf escape;
};

void jpeg_error_exit(j_common_ptr cinfo) {
    // libjpeg's errors are fatal by default (exit()); jump back to rc_jpeg_encode instead.
    auto err = reinterpret_cast<JPEGErrorManager *>(cinfo->err);
    std::longjmp(err->escape, 1);
}

void jpeg_silent_message(j_common_ptr) {}

constexpr size_t kArenaAlign = 64;  // libjpeg-turbo's SIMD code wants 32; a cache line is 64

}  // namespace

struct rc_jpeg_encoder {
    jpeg_compress_struct cinfo;
    JPEGErrorManager err;
    jpeg_destination_mgr dest;
    jpeg_memory_mgr original;        // libjpeg's own methods, for the pools we do not serve
    uint8_t *arena = nullptr;        // JPOOL_IMAGE allocations of the image being encoded
    size_t arena_capacity = 0;
    size_t arena_used = 0;
    size_t arena_shortfall = 0;      // bytes that did not fit this image: grow before the next
    bool overflow = false;           // the JPEG did not fit the caller's buffer
    uint8_t discard[4096];           // where output goes after an overflow
    std::vector<JSAMPROW> rows;      // row pointers, grown only when the height grows
    bool created = false;
};

namespace {

rc_jpeg_encoder *encoder_of(j_common_ptr cinfo) { return static_cast<rc_jpeg_encoder *>(cinfo->client_data); }

void *arena_take(rc_jpeg_encoder *e, j_common_ptr cinfo, size_t size) {
    size_t offset = (e->arena_used + kArenaAlign - 1) & ~(kArenaAlign - 1);
    if (offset + size <= e->arena_capacity) {
        e->arena_used = offset + size;
        return e->arena + offset;
    }
    e->arena_shortfall += size + kArenaAlign;
    return e->original.alloc_large(cinfo, JPOOL_IMAGE, size);
}

void *arena_alloc_small(j_common_ptr cinfo, int pool_id, size_t size) {
    auto e = encoder_of(cinfo);
    if (pool_id != JPOOL_IMAGE) return e->original.alloc_small(cinfo, pool_id, size);
    return arena_take(e, cinfo, size);
}

void *arena_alloc_large(j_common_ptr cinfo, int pool_id, size_t size) {
    auto e = encoder_of(cinfo);
    if (pool_id != JPOOL_IMAGE) return e->original.alloc_large(cinfo, pool_id, size);
    return arena_take(e, cinfo, size);
}

JSAMPARRAY arena_alloc_sarray(j_common_ptr cinfo, int pool_id, JDIMENSION samples_per_row, JDIMENSION num_rows) {
    auto e = encoder_of(cinfo);
    if (pool_id != JPOOL_IMAGE) return e->original.alloc_sarray(cinfo, pool_id, samples_per_row, num_rows);
    // As libjpeg-turbo's own alloc_sarray: rows padded to 64 samples, for SIMD reads past the end.
    size_t row_bytes = ((size_t)samples_per_row * sizeof(JSAMPLE) + 63) & ~(size_t)63;
    auto result = static_cast<JSAMPARRAY>(arena_take(e, cinfo, num_rows * sizeof(JSAMPROW)));
    for (JDIMENSION i = 0; i < num_rows; ++i) result[i] = static_cast<JSAMPROW>(arena_take(e, cinfo, row_bytes));
    return result;
}

JBLOCKARRAY arena_alloc_barray(j_common_ptr cinfo, int pool_id, JDIMENSION blocks_per_row, JDIMENSION num_rows) {
    auto e = encoder_of(cinfo);
    if (pool_id != JPOOL_IMAGE) return e->original.alloc_barray(cinfo, pool_id, blocks_per_row, num_rows);
    auto result = static_cast<JBLOCKARRAY>(arena_take(e, cinfo, num_rows * sizeof(JBLOCKROW)));
    for (JDIMENSION i = 0; i < num_rows; ++i)
        result[i] = static_cast<JBLOCKROW>(arena_take(e, cinfo, (size_t)blocks_per_row * sizeof(JBLOCK)));
    return result;
}

void arena_free_pool(j_common_ptr cinfo, int pool_id) {
    auto e = encoder_of(cinfo);
    if (pool_id == JPOOL_IMAGE) {
        e->arena_used = 0;
        if (e->arena_shortfall > 0) {
            // One allocation when images grow; every later image of this size fits.
            size_t capacity = e->arena_capacity + e->arena_shortfall;
            void *bigger = nullptr;
            if (posix_memalign(&bigger, kArenaAlign, capacity) == 0) {
                std::free(e->arena);
                e->arena = static_cast<uint8_t *>(bigger);
                e->arena_capacity = capacity;
            }
            e->arena_shortfall = 0;
        }
    }
    e->original.free_pool(cinfo, pool_id);  // frees the fallbacks, if any
}

void dest_init(j_compress_ptr) {}

boolean dest_empty(j_compress_ptr cinfo) {
    // Only reached when the JPEG outgrows the caller's buffer (sized for the worst case):
    // discard and report it at the end rather than write out of bounds.
    auto e = static_cast<rc_jpeg_encoder *>(cinfo->client_data);
    e->overflow = true;
    cinfo->dest->next_output_byte = e->discard;
    cinfo->dest->free_in_buffer = sizeof e->discard;
    return TRUE;
}

void dest_term(j_compress_ptr) {}

}  // namespace

extern "C" rc_jpeg_encoder *rc_jpeg_encoder_create(char *msg, size_t msg_len) {
    auto e = new (std::nothrow) rc_jpeg_encoder();
    if (!e) {
        put_message(msg, msg_len, "out of memory");
        return nullptr;
    }
    std::memset(&e->cinfo, 0, sizeof e->cinfo);
    e->cinfo.err = jpeg_std_error(&e->err.pub);
    e->err.pub.error_exit = jpeg_error_exit;
    e->err.pub.output_message = jpeg_silent_message;
    if (setjmp(e->err.escape)) {
        char text[JMSG_LENGTH_MAX];
        (*e->cinfo.err->format_message)(reinterpret_cast<j_common_ptr>(&e->cinfo), text);
        put_message(msg, msg_len, text);
        if (e->created) jpeg_destroy_compress(&e->cinfo);
        delete e;
        return nullptr;
    }
    jpeg_create_compress(&e->cinfo);
    e->created = true;
    e->cinfo.client_data = e;
    e->original = *e->cinfo.mem;
    e->cinfo.mem->alloc_small = arena_alloc_small;
    e->cinfo.mem->alloc_large = arena_alloc_large;
    e->cinfo.mem->alloc_sarray = arena_alloc_sarray;
    e->cinfo.mem->alloc_barray = arena_alloc_barray;
    e->cinfo.mem->free_pool = arena_free_pool;
    e->dest.init_destination = dest_init;
    e->dest.empty_output_buffer = dest_empty;
    e->dest.term_destination = dest_term;
    e->cinfo.dest = &e->dest;
    return e;
}

extern "C" void rc_jpeg_encoder_destroy(rc_jpeg_encoder *encoder) {
    if (!encoder) return;
    if (encoder->created) jpeg_destroy_compress(&encoder->cinfo);
    std::free(encoder->arena);
    delete encoder;
}

extern "C" size_t rc_jpeg_max_size(int width, int height) {
    if (width <= 0 || height <= 0) return 0;
    // Far above what baseline 4:2:0 can produce (libjpeg-turbo's own bound is about 1.5 bytes a
    // pixel plus headers): the output buffer is sized once per writer, so generosity is cheap.
    return (size_t)((width + 15) & ~15) * (size_t)((height + 15) & ~15) * 3 + 65536;
}

namespace {

// One image through the encoder: checks, destination, parameters, then `feed` writes the lines
// (scanlines or raw planes) between start and finish. The setjmp is here, in the frame that stays
// alive while libjpeg runs, so that an error anywhere in it comes back as RC_FAIL.
template <typename Feed>
int encode_image(rc_jpeg_encoder *e, int width, int height, int quality, J_COLOR_SPACE space, bool raw, uint8_t *dst,
                 size_t dst_cap, size_t *out_len, char *msg, size_t msg_len, Feed &&feed) {
    *out_len = 0;
    if (width <= 0 || height <= 0 || quality < 1 || quality > 100) {
        put_message(msg, msg_len, "bad image size or quality");
        return RC_FAIL;
    }
    if (dst_cap < rc_jpeg_max_size(width, height)) {
        put_message(msg, msg_len, "JPEG buffer too small");
        return RC_FAIL;
    }
    jpeg_compress_struct *cinfo = &e->cinfo;
    if (setjmp(e->err.escape)) {
        char text[JMSG_LENGTH_MAX];
        (*cinfo->err->format_message)(reinterpret_cast<j_common_ptr>(cinfo), text);
        put_message(msg, msg_len, text);
        jpeg_abort_compress(cinfo);
        cinfo->raw_data_in = FALSE;
        return RC_FAIL;
    }
    e->overflow = false;
    e->dest.next_output_byte = dst;
    e->dest.free_in_buffer = dst_cap;
    cinfo->image_width = (JDIMENSION)width;
    cinfo->image_height = (JDIMENSION)height;
    cinfo->input_components = 3;
    cinfo->in_color_space = space;
    jpeg_set_defaults(cinfo);  // YCbCr 4:2:0 (2x2, 1x1, 1x1), baseline, JFIF header
    jpeg_set_quality(cinfo, quality, TRUE);
    cinfo->raw_data_in = raw ? TRUE : FALSE;
    jpeg_start_compress(cinfo, TRUE);
    feed(cinfo);
    jpeg_finish_compress(cinfo);
    cinfo->raw_data_in = FALSE;
    if (e->overflow) {
        put_message(msg, msg_len, "JPEG larger than its buffer");
        return RC_FAIL;
    }
    *out_len = dst_cap - e->dest.free_in_buffer;
    return RC_OK;
}

}  // namespace

extern "C" int rc_jpeg_encode(rc_jpeg_encoder *e, const uint8_t *bgr, int width, int height, size_t stride,
                              int quality, uint8_t *dst, size_t dst_cap, size_t *out_len, char *msg, size_t msg_len) {
    if (height > 0 && e->rows.size() < (size_t)height) {
        try {
            e->rows.resize((size_t)height);
        } catch (...) {
            put_message(msg, msg_len, "out of memory");
            return RC_FAIL;
        }
    }
    // libjpeg-turbo converts from OpenCV's BGR itself.
    return encode_image(e, width, height, quality, JCS_EXT_BGR, false, dst, dst_cap, out_len, msg, msg_len,
                        [&](jpeg_compress_struct *cinfo) {
        for (int y = 0; y < height; ++y) e->rows[(size_t)y] = const_cast<JSAMPROW>(bgr + (size_t)y * stride);
        while (cinfo->next_scanline < cinfo->image_height) {
            jpeg_write_scanlines(cinfo, e->rows.data() + cinfo->next_scanline, cinfo->image_height - cinfo->next_scanline);
        }
    });
}

extern "C" int rc_jpeg_encode_i420(rc_jpeg_encoder *e, const rc_i420 *f, int quality, uint8_t *dst, size_t dst_cap,
                                   size_t *out_len, char *msg, size_t msg_len) {
    const int width = f->width, height = f->height;
    if (width <= 0 || height <= 0 || !f->y || !f->u || !f->v) {
        *out_len = 0;
        put_message(msg, msg_len, "bad image size or quality");
        return RC_FAIL;
    }
    // The encoder reads whole 8-sample blocks of each row: replicate the last column into the
    // padding (nothing to do at widths that are a multiple of 16).
    const int cw = (width + 1) / 2, ch = (height + 1) / 2;
    const size_t ypad = ((size_t)width + 7) / 8 * 8, cpad = ((size_t)cw + 7) / 8 * 8;
    if (ypad > (size_t)width)
        for (int y = 0; y < height; ++y) {
            uint8_t *row = f->y + (size_t)y * f->y_stride;
            std::memset(row + width, row[width - 1], ypad - (size_t)width);
        }
    if (cpad > (size_t)cw)
        for (int y = 0; y < ch; ++y) {
            uint8_t *u = f->u + (size_t)y * f->c_stride, *v = f->v + (size_t)y * f->c_stride;
            std::memset(u + cw, u[cw - 1], cpad - (size_t)cw);
            std::memset(v + cw, v[cw - 1], cpad - (size_t)cw);
        }
    // Raw data: the planes as they are, no colour conversion, no downsampling.
    return encode_image(e, width, height, quality, JCS_YCbCr, true, dst, dst_cap, out_len, msg, msg_len,
                        [&](jpeg_compress_struct *cinfo) {
        // One iMCU row at a time: 16 luma rows and 8 of each chroma; rows past the bottom repeat
        // the last one (libjpeg pads a raw image's height with what it is given).
        JSAMPROW yrows[16], urows[8], vrows[8];
        JSAMPARRAY planes[3] = {yrows, urows, vrows};
        while (cinfo->next_scanline < cinfo->image_height) {
            const int y0 = (int)cinfo->next_scanline;
            for (int i = 0; i < 16; ++i) yrows[i] = f->y + (size_t)std::min(y0 + i, height - 1) * f->y_stride;
            for (int i = 0; i < 8; ++i) {
                const int cy = std::min(y0 / 2 + i, ch - 1);
                urows[i] = f->u + (size_t)cy * f->c_stride;
                vrows[i] = f->v + (size_t)cy * f->c_stride;
            }
            jpeg_write_raw_data(cinfo, planes, 16);
        }
    });
}

extern "C" int rc_image_probe(const char *path, int *width, int *height, int x, int y, int w, int h, double *mean_bgr,
                              char *msg, size_t msg_len) {
    return guarded(msg, msg_len, [&]() -> int {
        cv::Mat img = cv::imread(path, cv::IMREAD_COLOR);
        if (img.empty()) {
            put_message(msg, msg_len, "OpenCV could not decode the image");
            return RC_FAIL;
        }
        *width = img.cols;
        *height = img.rows;
        cv::Rect r = cv::Rect(x, y, w, h) & cv::Rect(0, 0, img.cols, img.rows);
        if (r.area() > 0) {
            cv::Scalar m = cv::mean(img(r));
            mean_bgr[0] = m[0];
            mean_bgr[1] = m[1];
            mean_bgr[2] = m[2];
        } else {
            mean_bgr[0] = mean_bgr[1] = mean_bgr[2] = 0;
        }
        return RC_OK;
    });
}

// ---- benchmark support ----

extern "C" int rc_thread_pin_to_cpu(int cpu, char *msg, size_t msg_len) {
    if (cpu < 0 || cpu >= CPU_SETSIZE) {
        put_message(msg, msg_len, "no such CPU");
        return RC_FAIL;
    }
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    // pid 0: the calling thread only (Linux affinity is per thread).
    if (sched_setaffinity(0, sizeof one, &one) != 0) {
        put_message(msg, msg_len, std::strerror(errno));
        return RC_FAIL;
    }
    return RC_OK;
}

extern "C" int rc_usable_cpu_list(int *cpus, int max) {
    cpu_set_t allowed;
    CPU_ZERO(&allowed);
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) {
        if (max > 0) cpus[0] = 0;
        return 1;
    }
    int n = 0;
    for (int i = 0; i < CPU_SETSIZE; ++i) {
        if (!CPU_ISSET(i, &allowed)) continue;
        if (n < max) cpus[n] = i;
        ++n;
    }
    if (n == 0) {
        if (max > 0) cpus[0] = 0;
        return 1;
    }
    return n;
}

extern "C" void rc_release_free_memory(void) { malloc_trim(0); }

extern "C" int rc_usable_cpus(void) {
    int none[1];
    return rc_usable_cpu_list(none, 0);  // max 0: counts, writes nothing
}

extern "C" int rc_video_make(const char *path, int width, int height, int frames, double fps, char *msg,
                             size_t msg_len) {
    return guarded(msg, msg_len, [&]() -> int {
        cv::VideoWriter writer;
        if (!writer.open(path, cv::CAP_FFMPEG, cv::VideoWriter::fourcc('a', 'v', 'c', '1'), fps,
                         cv::Size(width, height), true)) {
            put_message(msg, msg_len, "OpenCV's VideoWriter cannot write H.264 (avc1) here");
            return RC_FAIL;
        }
        rc_pattern *pattern = rc_pattern_create(width, height);
        if (!pattern) {
            put_message(msg, msg_len, "cannot create the test pattern");
            return RC_FAIL;
        }
        cv::Mat frame(height, width, CV_8UC3);
        for (int i = 0; i < frames; ++i) {
            rc_pattern_render(pattern, frame.data, frame.step, (uint64_t)i, (int64_t)i * 1000000000LL / (int64_t)fps);
            writer.write(frame);
        }
        rc_pattern_destroy(pattern);
        writer.release();
        return RC_OK;
    });
}
