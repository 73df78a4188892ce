// COpenCV: image work for the taps (a shrunk grey copy of a frame for analytics). See COpenCV.h.
// Plain loops over bytes the compiler vectorises; nothing here allocates or throws.
#include "COpenCV.h"

#include <cstdint>

namespace {

// The walk both shrinks share, over the output pixels.
// `grey(x0, y0, fx, fy)` returns the output value of the block whose top-left input pixel is
// (x0, y0), fx × fy pixels (the factor, less at a frame smaller than it).
template <typename Grey>
void shrink(int width, int height, int factor, uint8_t *dst, Grey &&grey) {
    if (factor < 1) factor = 1;
    const int ow = width / factor > 0 ? width / factor : 1, oh = height / factor > 0 ? height / factor : 1;
    const int fx = width < factor ? width : factor, fy = height < factor ? height : factor;
    for (int y = 0; y < oh; ++y)
        for (int x = 0; x < ow; ++x) dst[size_t(y) * ow + x] = grey(x * factor, y * factor, fx, fy);
}

}  // namespace

extern "C" void rc_grey_shrink(const uint8_t *src, size_t stride, int width, int height, int factor, uint8_t *dst) {
    shrink(width, height, factor, dst, [&](int x0, int y0, int fx, int fy) {
        const uint32_t area = uint32_t(fx) * uint32_t(fy);
        uint32_t sum = 0;
        for (int dy = 0; dy < fy; ++dy) {
            const uint8_t *row = src + size_t(y0 + dy) * stride + size_t(x0);
            for (int dx = 0; dx < fx; ++dx) sum += row[dx];
        }
        return uint8_t((sum + area / 2) / area);
    });
}

extern "C" void rc_bgr_grey_shrink(const uint8_t *bgr, size_t stride, int width, int height, int factor, uint8_t *dst) {
    shrink(width, height, factor, dst, [&](int x0, int y0, int fx, int fy) {
        const uint32_t area = uint32_t(fx) * uint32_t(fy);
        uint32_t b = 0, g = 0, r = 0;
        for (int dy = 0; dy < fy; ++dy) {
            const uint8_t *p = bgr + size_t(y0 + dy) * stride + size_t(x0) * 3;
            for (int dx = 0; dx < fx; ++dx) { b += p[3 * dx]; g += p[3 * dx + 1]; r += p[3 * dx + 2]; }
        }
        // 0.299, 0.587, 0.114 in 16.16 fixed point.
        const uint64_t luma = (uint64_t(r) * 19595 + uint64_t(g) * 38470 + uint64_t(b) * 7471) / area;
        return uint8_t((luma + 32768) >> 16);
    });
}
