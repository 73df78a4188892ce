// COpenCV: image work for the taps (a shrunk grey copy of a frame for analytics). See COpenCV.h.
// Plain loops over bytes the compiler vectorises; nothing here allocates or throws.
#include "COpenCV.h"

#include <cstdint>

namespace {
inline int shrunk(int n, int factor) { return n / factor > 0 ? n / factor : 1; }
}  // namespace

extern "C" void rc_grey_shrink(const uint8_t *src, size_t stride, int width, int height, int factor, uint8_t *dst) {
    if (factor < 1) factor = 1;
    const int ow = shrunk(width, factor), oh = shrunk(height, factor);
    const int fx = width < factor ? width : factor, fy = height < factor ? height : factor;
    const uint32_t area = uint32_t(fx) * uint32_t(fy);
    for (int y = 0; y < oh; ++y) {
        for (int x = 0; x < ow; ++x) {
            uint32_t sum = 0;
            for (int dy = 0; dy < fy; ++dy) {
                const uint8_t *row = src + size_t(y * factor + dy) * stride + size_t(x) * factor;
                for (int dx = 0; dx < fx; ++dx) sum += row[dx];
            }
            dst[size_t(y) * ow + x] = uint8_t((sum + area / 2) / area);
        }
    }
}

extern "C" void rc_bgr_grey_shrink(const uint8_t *bgr, size_t stride, int width, int height, int factor, uint8_t *dst) {
    if (factor < 1) factor = 1;
    const int ow = shrunk(width, factor), oh = shrunk(height, factor);
    const int fx = width < factor ? width : factor, fy = height < factor ? height : factor;
    const uint32_t area = uint32_t(fx) * uint32_t(fy);
    for (int y = 0; y < oh; ++y) {
        for (int x = 0; x < ow; ++x) {
            uint32_t b = 0, g = 0, r = 0;
            for (int dy = 0; dy < fy; ++dy) {
                const uint8_t *p = bgr + size_t(y * factor + dy) * stride + size_t(x) * factor * 3;
                for (int dx = 0; dx < fx; ++dx) { b += p[3 * dx]; g += p[3 * dx + 1]; r += p[3 * dx + 2]; }
            }
            // 0.299, 0.587, 0.114 in 16.16 fixed point.
            const uint64_t luma = (uint64_t(r) * 19595 + uint64_t(g) * 38470 + uint64_t(b) * 7471) / area;
            dst[size_t(y) * ow + x] = uint8_t((luma + 32768) >> 16);
        }
    }
}
