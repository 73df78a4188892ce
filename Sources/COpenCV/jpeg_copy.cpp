// JPEG bytes passed through (a camera's own MJPEG frames): see COpenCV.h.
#include "COpenCV.h"

#include <cstring>

extern "C" size_t rc_jpeg_copy_without_exif(const uint8_t *src, size_t n, uint8_t *dst, size_t cap) {
    if (n < 4 || cap < n || src[0] != 0xFF || src[1] != 0xD8) return 0;
    std::memcpy(dst, src, 2);
    size_t i = 2, out = 2;
    // Header segments up to the scan: each copied unless it is an APP1 "Exif" segment.
    while (i + 4 <= n && src[i] == 0xFF && src[i + 1] != 0xDA) {
        const uint8_t m = src[i + 1];
        if (m == 0xFF) { dst[out++] = src[i++]; continue; }  // fill byte
        if (m == 0x01 || (m >= 0xD0 && m <= 0xD7)) {  // a marker without a length (TEM, RSTn)
            std::memcpy(dst + out, src + i, 2);
            out += 2;
            i += 2;
            continue;
        }
        const size_t segment = size_t(src[i + 2]) << 8 | src[i + 3];
        if (segment < 2 || i + 2 + segment > n) return 0;
        const bool exif = m == 0xE1 && segment >= 8 && std::memcmp(src + i + 4, "Exif\0\0", 6) == 0;
        if (!exif) {
            std::memcpy(dst + out, src + i, 2 + segment);
            out += 2 + segment;
        }
        i += 2 + segment;
    }
    // The scan and everything after it, as it came.
    std::memcpy(dst + out, src + i, n - i);
    return out + (n - i);
}
