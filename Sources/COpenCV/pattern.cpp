// COpenCV: the built-in test pattern, in packed BGR and in I420. See COpenCV.h for what each function promises. Every entry point catches
// every exception: nothing may unwind into Swift.
#include "shim_internal.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

using rc_shim::guarded;
using rc_shim::put_message;

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
