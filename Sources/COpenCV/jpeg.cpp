// COpenCV: JPEG encoding with libjpeg-turbo, from BGR and from I420 planes. See COpenCV.h for what each function promises. Every entry point catches
// every exception: nothing may unwind into Swift.
#include "shim_internal.h"

#include <algorithm>
#include <csetjmp>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

// libjpeg's header expects FILE and size_t declared first.
#include <cstdio>
#include <jpeglib.h>

using rc_shim::guarded;
using rc_shim::put_message;

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
