// COpenCV: OpenCV's VideoCapture for V4L2 webcams, and OpenCV's image and video writing for tests and the bench. See COpenCV.h for what each function promises. Every entry point catches
// every exception: nothing may unwind into Swift.
#include "shim_internal.h"
#include "RCAVSource.h"

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>
#include <atomic>
#include <cmath>
#include <cstring>
#include <iostream>
#include <mutex>
#include <streambuf>
#include <string>
#include <new>
#include <vector>

using rc_shim::guarded;
using rc_shim::put_message;

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

// ---- OpenCV's own messages ----
//
// OpenCV 4.6 has no hook for its log lines (replaceWriteLogMessage came in 4.7): it writes each
// whole message to std::cerr (warnings and errors) or std::cout. std::cerr's buffer is replaced by
// one that hands each line to ringcap's logger, with the camera of the thread that wrote it.

namespace {

std::atomic<rc_av_log_sink> g_cv_sink{nullptr};
thread_local int tl_cv_tag = -1;

class LineSink : public std::streambuf {
    std::mutex lock_;
    std::string line_;

    void put(char c) {
        if (c == '\n') {
            emit();
            line_.clear();
        } else if (line_.size() < 4096) {
            line_.push_back(c);
        }
    }

    void emit() {
        rc_av_log_sink sink = g_cv_sink.load(std::memory_order_acquire);
        if (!sink || line_.empty()) return;
        // "[ WARN:0@0.044] global ./modules/videoio/src/cap_v4l.cpp (902) open ...: text"
        int level = 24;  // FFmpeg's AV_LOG_WARNING, the sink's scale
        const char *text = line_.c_str();
        if (!std::strncmp(text, "[ERROR:", 7) || !std::strncmp(text, "[FATAL:", 7)) level = 16;
        else if (std::strncmp(text, "[ WARN:", 7)) level = 32;  // INFO and below
        if (text[0] == '[') {
            const char *end = std::strchr(text, ']');
            if (end) text = end + 1;
            while (*text == ' ') ++text;
            if (!std::strncmp(text, "global ", 7)) text += 7;
        }
        sink(tl_cv_tag, level, text);
    }

protected:
    int overflow(int c) override {
        if (c == traits_type::eof()) return traits_type::not_eof(c);
        std::lock_guard<std::mutex> guard(lock_);
        put(char(c));
        return c;
    }

    std::streamsize xsputn(const char *s, std::streamsize n) override {
        std::lock_guard<std::mutex> guard(lock_);
        for (std::streamsize i = 0; i < n; ++i) put(s[i]);
        return n;
    }
};

}  // namespace

extern "C" void rc_opencv_set_log_sink(rc_av_log_sink sink) {
    g_cv_sink.store(sink, std::memory_order_release);
    // Once, before any capture thread writes (the first engine start): replacing a stream's
    // buffer while another thread writes to it would be a data race.
    static std::once_flag once;
    std::call_once(once, [] { std::cerr.rdbuf(new LineSink()); });  // never destroyed: OpenCV may log at exit
}

extern "C" void rc_opencv_set_thread_tag(int tag) { tl_cv_tag = tag; }
