// COpenCV: a JPEG made smaller or at another quality (the live view's variants). See COpenCV.h.
#include "shim_internal.h"

#include <csetjmp>
#include <cstdio>
#include <new>
#include <vector>

#include <jpeglib.h>
#include <opencv2/imgproc.hpp>

using rc_shim::guarded;
using rc_shim::put_message;

namespace {

struct ScaleErrorManager {
    jpeg_error_mgr pub;
    jmp_buf escape;
    char text[JMSG_LENGTH_MAX];
};

void scale_error_exit(j_common_ptr cinfo) {
    auto err = reinterpret_cast<ScaleErrorManager *>(cinfo->err);
    (*cinfo->err->format_message)(cinfo, err->text);
    std::longjmp(err->escape, 1);
}

void scale_silent_message(j_common_ptr) {}

}  // namespace

struct rc_jpeg_scaler {
    jpeg_decompress_struct dinfo;
    ScaleErrorManager err;
    rc_jpeg_encoder *encoder = nullptr;
    cv::Mat decoded;                 // BGR at the DCT-scaled size, reused
    cv::Mat resized;                 // BGR at the asked width, reused
    std::vector<JSAMPROW> rows;
};

extern "C" rc_jpeg_scaler *rc_jpeg_scaler_create(char *msg, size_t msg_len) {
    auto s = new (std::nothrow) rc_jpeg_scaler();
    if (!s) {
        put_message(msg, msg_len, "out of memory");
        return nullptr;
    }
    s->dinfo.err = jpeg_std_error(&s->err.pub);
    s->err.pub.error_exit = scale_error_exit;
    s->err.pub.output_message = scale_silent_message;
    if (setjmp(s->err.escape)) {
        put_message(msg, msg_len, s->err.text);
        delete s;
        return nullptr;
    }
    jpeg_create_decompress(&s->dinfo);
    s->encoder = rc_jpeg_encoder_create(msg, msg_len);
    if (!s->encoder) {
        jpeg_destroy_decompress(&s->dinfo);
        delete s;
        return nullptr;
    }
    return s;
}

extern "C" void rc_jpeg_scaler_destroy(rc_jpeg_scaler *s) {
    if (!s) return;
    jpeg_destroy_decompress(&s->dinfo);
    rc_jpeg_encoder_destroy(s->encoder);
    delete s;
}

namespace {

// Decodes `src` into s->decoded at the smallest DCT scale (1/8 steps) not below `width` wide.
// The setjmp is in this frame, which owns no C++ object that needs unwinding.
int decode_scaled(rc_jpeg_scaler *s, const uint8_t *src, size_t n, int width, char *msg, size_t msg_len) {
    jpeg_decompress_struct *d = &s->dinfo;
    if (setjmp(s->err.escape)) {
        jpeg_abort_decompress(d);
        put_message(msg, msg_len, s->err.text);
        return RC_FAIL;
    }
    jpeg_mem_src(d, src, static_cast<unsigned long>(n));
    jpeg_read_header(d, TRUE);
    d->out_color_space = JCS_EXT_BGR;
    d->dct_method = JDCT_ISLOW;
    d->scale_num = 8;
    d->scale_denom = 8;
    if (width > 0 && width < static_cast<int>(d->image_width)) {
        // The smallest num/8 whose output is still at least `width` wide.
        for (unsigned num = 1; num <= 8; num++) {
            if ((d->image_width * num + 7) / 8 >= static_cast<unsigned>(width)) {
                d->scale_num = num;
                break;
            }
        }
    }
    jpeg_calc_output_dimensions(d);
    const int w = static_cast<int>(d->output_width), h = static_cast<int>(d->output_height);
    if (s->decoded.cols != w || s->decoded.rows != h || s->decoded.type() != CV_8UC3) {
        s->decoded.create(h, w, CV_8UC3);
    }
    if (s->rows.size() < static_cast<size_t>(h)) s->rows.resize(h);
    for (int y = 0; y < h; y++) s->rows[y] = s->decoded.ptr<uint8_t>(y);
    jpeg_start_decompress(d);
    while (d->output_scanline < d->output_height) {
        jpeg_read_scanlines(d, s->rows.data() + d->output_scanline, d->output_height - d->output_scanline);
    }
    jpeg_finish_decompress(d);
    return RC_OK;
}

}  // namespace

extern "C" int rc_jpeg_rescale(rc_jpeg_scaler *s, const uint8_t *src, size_t n, int width, int quality, uint8_t *dst,
                               size_t dst_cap, size_t *out_len, int *out_width, int *out_height, char *msg,
                               size_t msg_len) {
    return guarded(msg, msg_len, [&]() -> int {
        if (decode_scaled(s, src, n, width, msg, msg_len) != RC_OK) return RC_FAIL;
        const cv::Mat *image = &s->decoded;
        if (width > 0 && width < s->decoded.cols) {
            // Even height, aspect kept: 4:2:0 wants it and players like it.
            int height = static_cast<int>((static_cast<long>(s->decoded.rows) * width / s->decoded.cols) & ~1L);
            if (height < 2) height = 2;
            if (s->resized.cols != width || s->resized.rows != height) s->resized.create(height, width, CV_8UC3);
            cv::resize(s->decoded, s->resized, s->resized.size(), 0, 0, cv::INTER_AREA);
            image = &s->resized;
        }
        *out_width = image->cols;
        *out_height = image->rows;
        if (dst_cap < rc_jpeg_max_size(image->cols, image->rows)) {
            put_message(msg, msg_len, "output buffer too small");
            return RC_FAIL;
        }
        return rc_jpeg_encode(s->encoder, image->data, image->cols, image->rows, image->step, quality, dst, dst_cap,
                              out_len, msg, msg_len);
    });
}
