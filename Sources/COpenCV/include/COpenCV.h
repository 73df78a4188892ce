// COpenCV: the plain-C boundary between ringcap (Swift) and OpenCV 4 / libjpeg-turbo (C++/C).
//
// Why a shim: OpenCV's API is C++ and throws C++ exceptions, which must never unwind through
// Swift frames. Every function here catches everything, returns a status code, and writes a
// human-readable reason into a caller-provided buffer. Handles are opaque; each create has a
// destroy. Nothing here keeps global error state.
//
// Thread-safety: a handle is used by one thread at a time (its owner). Different handles may be
// used on different threads at once.
#ifndef RINGCAP_COPENCV_H
#define RINGCAP_COPENCV_H

#include <stddef.h>
#include <stdint.h>

// Streams and files through FFmpeg directly: rc_av_*.
#include "RCAVSource.h"

#ifdef __cplusplus
extern "C" {
#endif

/// Status codes shared by every function that returns an int.
enum {
    RC_OK = 0,
    /// The source has no more frames (end of a file).
    RC_END = 1,
    /// The decoded frame's size differs from the buffer's; the frame is kept inside the capture:
    /// ask `rc_capture_size` for the new size and fetch it with `rc_capture_copy_frame`.
    RC_SIZE_CHANGED = 2,
    /// Failure; the message buffer says why.
    RC_FAIL = -1,
};

/// How a source is opened. Backends are always named explicitly: OpenCV 4.6 honours open/read
/// timeouts only with the FFmpeg backend named, and without a named backend it tries
/// GStreamer first (0.15 s wasted on a missing webcam).
enum {
    RC_SOURCE_DEVICE = 0,  // V4L2 webcam by index
    RC_SOURCE_STREAM = 1,  // rtsp/http(s) through FFmpeg, with timeouts
    RC_SOURCE_FILE = 2,    // a video file through FFmpeg
};

typedef struct rc_capture_params {
    int kind;                 // RC_SOURCE_*
    int device_index;         // RC_SOURCE_DEVICE only
    int open_timeout_ms;      // RC_SOURCE_STREAM only; 0: OpenCV's default (30 s)
    int read_timeout_ms;      // RC_SOURCE_STREAM only; 0: OpenCV's default (30 s)
    int width, height;        // wanted frame size; 0: the source's own. Devices are asked for
                              // it; other sources are scaled to it.
    double fps;               // RC_SOURCE_DEVICE only: rate to ask the camera for; 0: its own
} rc_capture_params;

/// One open OpenCV VideoCapture plus the scratch frame it decodes into.
typedef struct rc_capture rc_capture;

/// Opens `source` (a path or URL; ignored for devices). On success stores a new handle in
/// `*out` and returns RC_OK; otherwise returns RC_FAIL with a reason in `msg`.
int rc_capture_open(const char *_Nonnull source, const rc_capture_params *_Nonnull params,
                    rc_capture *_Nullable *_Nonnull out, char *_Nonnull msg, size_t msg_len);

/// Releases the capture and its frame. A capture that failed is destroyed, never reused:
/// OpenCV's FFmpeg backend does not recover once a read has failed.
void rc_capture_destroy(rc_capture *_Nullable cap);

/// The size of the frames `rc_capture_retrieve` produces (after scaling), as far as known:
/// from the backend's properties until the first frame, then from the frames themselves.
void rc_capture_size(const rc_capture *_Nonnull cap, int *_Nonnull width, int *_Nonnull height);

/// The source's own frame rate, or 0 when it does not say.
double rc_capture_source_fps(const rc_capture *_Nonnull cap);

/// For a file: the number of frames its container announces (from its header, or estimated
/// from its duration), or 0 when unknown. Lets a truncated or damaged file be reported as such
/// when it ends early, instead of looking like a complete recording.
int64_t rc_capture_frame_count(const rc_capture *_Nonnull cap);

/// Grabs the next frame (demux and decode happen here for FFmpeg). RC_OK, RC_END for a file
/// that ended, RC_FAIL for a stream or device that failed.
int rc_capture_grab(rc_capture *_Nonnull cap, char *_Nonnull msg, size_t msg_len);

/// Converts the grabbed frame to packed BGR (3 bytes a pixel) straight into `dst`, whose rows
/// are `stride` bytes apart and which holds `rc_capture_size` pixels. Returns RC_SIZE_CHANGED
/// when the frame no longer fits (the stream changed resolution).
int rc_capture_retrieve(rc_capture *_Nonnull cap, uint8_t *_Nonnull dst, size_t stride,
                        char *_Nonnull msg, size_t msg_len);

/// After RC_SIZE_CHANGED: copies the kept frame into a buffer of the new size.
int rc_capture_copy_frame(rc_capture *_Nonnull cap, uint8_t *_Nonnull dst, size_t stride,
                          char *_Nonnull msg, size_t msg_len);

/// A built-in test pattern: a diagonal colour field, a box moving across it, and the frame number
/// and time drawn in. It must stay cheap next to a JPEG encode, because the benchmarks run on it
/// (their limit counts the encode only): the field is one precomputed colour line copied row by
/// row, the same in every frame, so that a buffer which already holds an earlier frame needs only
/// the old box and text erased and the new ones drawn (rc_pattern_render_over), a few percent of
/// the frame's bytes.
typedef struct rc_pattern rc_pattern;

rc_pattern *_Nullable rc_pattern_create(int width, int height);
void rc_pattern_destroy(rc_pattern *_Nullable pattern);
/// Renders frame number `frame` stamped with `unix_ns` (UTC) into packed BGR `dst`.
void rc_pattern_render(const rc_pattern *_Nonnull pattern, uint8_t *_Nonnull dst, size_t stride,
                       uint64_t frame, int64_t unix_ns);
/// The same result as rc_pattern_render, for a `dst` that holds exactly what this pattern
/// rendered for `previous_frame` (at any time): redraws only what differs.
void rc_pattern_render_over(const rc_pattern *_Nonnull pattern, uint8_t *_Nonnull dst, size_t stride,
                            uint64_t frame, int64_t unix_ns, uint64_t previous_frame);

/// A frame in planar YUV 4:2:0 (I420), full range (JFIF's YCbCr), in one buffer: the Y plane
/// (`height` rows of `y_stride` bytes), then U and V (`(height + 1) / 2` rows of `c_stride`).
/// Strides are padded to the JPEG's blocks. The frames ringcap encodes itself are I420 from the
/// source to the encoder: no colour conversion either way (webcams through OpenCV stay BGR).
typedef struct rc_i420 {
    uint8_t *_Nullable y, *_Nullable u, *_Nullable v;
    size_t y_stride, c_stride;
    int width, height;
} rc_i420;

/// Bytes of a buffer that holds a width×height I420 frame in `rc_i420_layout`.
size_t rc_i420_size(int width, int height);
/// The planes of a width×height I420 frame in the buffer at `base` (NULL: strides only).
rc_i420 rc_i420_layout(uint8_t *_Nullable base, int width, int height);

/// The test pattern rendered straight in I420 (the same picture as rc_pattern_render's, in
/// JFIF's YCbCr), and its partial redraw over an earlier frame of this pattern.
void rc_pattern_render_i420(const rc_pattern *_Nonnull pattern, const rc_i420 *_Nonnull dst, uint64_t frame,
                            int64_t unix_ns);
void rc_pattern_render_i420_over(const rc_pattern *_Nonnull pattern, const rc_i420 *_Nonnull dst, uint64_t frame,
                                 int64_t unix_ns, uint64_t previous_frame);

/// A JPEG compressor (libjpeg-turbo). Compresses straight from packed BGR into a buffer the
/// caller owns and, after the first image of a size, allocates nothing per image; OpenCV's
/// imencode would allocate a vector on every call, and TurboJPEG's tjCompress2 about nine blocks.
typedef struct rc_jpeg_encoder rc_jpeg_encoder;

rc_jpeg_encoder *_Nullable rc_jpeg_encoder_create(char *_Nonnull msg, size_t msg_len);
void rc_jpeg_encoder_destroy(rc_jpeg_encoder *_Nullable encoder);
/// A bound on the JPEG a width×height image can become (4:2:0): size `dst` for it once.
size_t rc_jpeg_max_size(int width, int height);
/// Encodes packed BGR at `quality` (1...100, 4:2:0) into `dst` (capacity `dst_cap`, at least
/// `rc_jpeg_max_size`). Stores the JPEG's length in `*out_len`.
int rc_jpeg_encode(rc_jpeg_encoder *_Nonnull encoder, const uint8_t *_Nonnull bgr, int width, int height,
                   size_t stride, int quality, uint8_t *_Nonnull dst, size_t dst_cap,
                   size_t *_Nonnull out_len, char *_Nonnull msg, size_t msg_len);

/// Encodes an I420 frame (rc_i420_layout) at `quality` through libjpeg's raw-data path: the
/// planes go to the DCT as they are, with no colour conversion and no downsampling. Fills the
/// rows' padding (the last column, replicated) in place. Otherwise as rc_jpeg_encode.
int rc_jpeg_encode_i420(rc_jpeg_encoder *_Nonnull encoder, const rc_i420 *_Nonnull frame, int quality,
                        uint8_t *_Nonnull dst, size_t dst_cap, size_t *_Nonnull out_len, char *_Nonnull msg,
                        size_t msg_len);

/// A JPEG made again at another width or quality, for the live view's variants: decoded with
/// libjpeg's DCT scaling (straight to the smallest 1/8 step not narrower than asked), shrunk to
/// the exact width (area average, even height, aspect kept), encoded at `quality`. Reuses its
/// buffers: after the first frame of a size, no allocation. Owned by one thread at a time.
typedef struct rc_jpeg_scaler rc_jpeg_scaler;

rc_jpeg_scaler *_Nullable rc_jpeg_scaler_create(char *_Nonnull msg, size_t msg_len);
void rc_jpeg_scaler_destroy(rc_jpeg_scaler *_Nullable scaler);
/// `width` 0 (or not below the source's): the source's size. `dst` of at least
/// rc_jpeg_max_size(source width, source height). The result's size in `*out_width`, `*out_height`.
int rc_jpeg_rescale(rc_jpeg_scaler *_Nonnull scaler, const uint8_t *_Nonnull src, size_t n, int width, int quality,
                    uint8_t *_Nonnull dst, size_t dst_cap, size_t *_Nonnull out_len, int *_Nonnull out_width,
                    int *_Nonnull out_height, char *_Nonnull msg, size_t msg_len);

/// The live benchmark's floor: serves `streams` MJPEG streams of the same JPEG at `fps` on
/// 127.0.0.1:`port`, as ringcap's stream.mjpg sends them (chunked parts with Content-Type,
/// Content-Length and X-Timestamp), to every client that asks, from one thread with plain
/// blocking send(). The client's path picks the stream (the digit after "cam"). Runs until
/// SIGTERM or SIGINT. RC_FAIL when it cannot listen.
int rc_mjpeg_floor_serve(int port, const uint8_t *_Nonnull jpeg, size_t jpeg_len, int streams, double fps,
                         char *_Nonnull msg, size_t msg_len);

/// Decodes an image file with OpenCV (imread) and reports its size, and the mean BGR of the
/// block [x, x+w) × [y, y+h). For tests and tools that must check what was written with an
/// independent decoder; not used while recording.
int rc_image_probe(const char *_Nonnull path, int *_Nonnull width, int *_Nonnull height,
                   int x, int y, int w, int h, double *_Nonnull mean_bgr /* [3] */,
                   char *_Nonnull msg, size_t msg_len);

/// Pins the calling thread to CPU `cpu` alone.
/// Why: the benchmark's machine limit is made of single-core rates, and FFmpeg's decoder starts
/// worker threads of its own at open; threads inherit the mask of the thread that creates them, so
/// a capture opened after this call decodes on that one CPU however many threads it starts.
/// Returns RC_OK or RC_FAIL (errno's text in `msg`).
int rc_thread_pin_to_cpu(int cpu, char *_Nonnull msg, size_t msg_len);

/// The CPUs this process may run on (its affinity mask), in increasing order: writes at most
/// `max` of them to `cpus` and returns how many there are (at least 1: CPU 0 when the mask
/// cannot be read).
int rc_usable_cpu_list(int *_Nonnull cpus, int max);

/// Returns memory the process freed to the system (glibc's malloc_trim), so that the bench's next
/// recording starts from what it really holds; Swift's Glibc module does not export malloc.h.
void rc_release_free_memory(void);

/// The number of CPUs this process may run on (its affinity mask), at least 1.
int rc_usable_cpus(void);

/// Writes `frames` frames of the test pattern as an H.264 file through OpenCV's VideoWriter
/// (FFmpeg backend, fourcc avc1), for machines without the ffmpeg program. RC_OK or RC_FAIL.
int rc_video_make(const char *_Nonnull path, int width, int height, int frames, double fps,
                  char *_Nonnull msg, size_t msg_len);

/// Copies a camera's JPEG `src` (`n` bytes) into `dst` without its own EXIF (APP1 "Exif"
/// segments), everything else byte for byte, so that ringcap's EXIF (time, camera, position) can
/// go in its place: the camera's frame stored as it came, with one EXIF, and ours. Returns the
/// bytes written, or 0 when `src` does not start as a JPEG, a header segment runs past its end,
/// or `cap` < `n`.
size_t rc_jpeg_copy_without_exif(const uint8_t *_Nonnull src, size_t n, uint8_t *_Nonnull dst, size_t cap);

/// A process-wide bell a signal handler may ring (sem_post is async-signal-safe, which a
/// condition variable is not): rc_recorder_sleep returns when the monotonic clock reads
/// `deadline_ns` or someone called rc_recorder_wake. The CLI's signal watcher sleeps on it and
/// asks the engine to stop. Extra wakes only make the sleeper look again. Why C: sem_clockwait
/// (monotonic) is a GNU extension Glibc's Swift module does not export.
void rc_recorder_wake(void);

/// posix_spawn_file_actions_addclosefrom_np (glibc 2.34+), which Glibc's Swift module does not
/// export: the child gets no descriptor from `lowest_fd` up. `actions` is a
/// posix_spawn_file_actions_t. Returns 0 or an errno.
int rc_spawn_actions_close_from(void *_Nonnull actions, int lowest_fd);
void rc_recorder_sleep(uint64_t deadline_ns);

/// Renames `from` to `to` unless `to` exists: a stored frame is never replaced, whatever the
/// clock did (rename(2) would replace it silently). renameat2(RENAME_NOREPLACE) where the file
/// system has it, else link + unlink. Returns 0, or an errno (EEXIST when `to` exists).
int rc_rename_noreplace(const char *_Nonnull from, const char *_Nonnull to);

// ---- Image work for the taps (image.cpp) ----

/// A grey plane (`stride` bytes a row) shrunk by `factor` in each direction, each output pixel
/// the mean of its factor×factor block: into `dst`, `width / factor` × `height / factor` bytes
/// (at least 1×1), rows packed. No allocation.
void rc_grey_shrink(const uint8_t *_Nonnull src, size_t stride, int width, int height, int factor,
                    uint8_t *_Nonnull dst);
/// The same from packed BGR: grey as JPEG's Y (0.299 R + 0.587 G + 0.114 B) of each block's mean.
void rc_bgr_grey_shrink(const uint8_t *_Nonnull bgr, size_t stride, int width, int height, int factor,
                        uint8_t *_Nonnull dst);

#ifdef __cplusplus
}
#endif
#endif
