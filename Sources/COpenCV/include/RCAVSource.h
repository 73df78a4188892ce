// RCAVSource: network streams and video files read through libavformat/libavcodec directly.
//
// Why not cv::VideoCapture (OpenCV 4.6's FFmpeg backend) for these:
//  - it keeps its swscale context for the size the stream announced, so after a mid-stream
//    resolution change swscale fails and it hands back a stale copy of the last good frame; here
//    every frame is converted at its true decoded size;
//  - it holds one process-wide mutex around every open, so one hung camera blocks all others;
//    here handles share no lock, and timeouts go through FFmpeg's interrupt callback.
//
// Same conventions as COpenCV.h: opaque handles, create/destroy pairs, status codes with the
// reason in a caller-provided buffer, no C++ exception crosses this boundary, no global error
// state. Status codes are COpenCV.h's: RC_OK (0), RC_END (1), RC_FAIL (-1).
//
// Thread-safety: a handle is used by one thread at a time (its owner), except rc_av_interrupt,
// which any thread may call at any time while the handle exists. Different handles may be used on
// different threads at once and never wait for each other.
#ifndef RINGCAP_RCAVSOURCE_H
#define RINGCAP_RCAVSOURCE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rc_av_source rc_av_source;

typedef struct rc_av_params {
    int is_live;          // 1: network stream (timeouts apply, RTSP options); 0: a file (no timeouts)
    int open_timeout_ms;  // live only: bound on the whole open (connect + stream info); 0: none
    int read_timeout_ms;  // live only: bound on one rc_av_grab, i.e. on the time without a
                          // DECODED frame, even while packets arrive (a camera sending only broken
                          // JPEGs); 0: none
    int rtsp_tcp;         // RTSP only: 1 rtsp_transport=tcp, 0 udp
    int width, height;    // output size; 0: each frame's own decoded size. When set, every frame is
                          // scaled to it
    int tag;              // the camera's index, handed back to the log sink
    int threads;          // decoder threads; 0: one per usable CPU
    int packets;          // 1: when the stream's frames are JPEGs (MJPEG) that carry their own
                          // Huffman tables, grab hands each over as it came, undecoded
                          // (rc_av_packet); otherwise, or 0, frames are decoded
} rc_av_params;

/// Makes a handle that does no I/O yet. Why it exists beside rc_av_open: the handle must exist
/// before the blocking open starts, so that another thread can rc_av_interrupt that open (a
/// shutdown must not wait for a hung camera's open timeout). RC_OK or RC_FAIL (out of memory).
int rc_av_create(const rc_av_params *_Nonnull params, rc_av_source *_Nullable *_Nonnull out,
                 char *_Nonnull msg, size_t msg_len);

/// Opens `url` (a path, rtsp://, http://...) on a handle from rc_av_create: demuxer, stream info,
/// best video stream, its decoder (threaded). Blocks up to open_timeout_ms for live sources.
/// Once per handle; on failure destroy the handle. RC_OK, or RC_FAIL with the reason in `msg`
/// ("cannot open: Connection refused", "no video stream", "timed out after 5.0 s opening",
/// "interrupted") and the negative AVERROR in `*av_error` (0 on success): e.g. AVERROR(EMFILE),
/// -24, when the process ran out of file descriptors, AVERROR(ETIMEDOUT) (-110) on the open timeout,
/// AVERROR_EXIT when interrupted.
int rc_av_open_input(rc_av_source *_Nonnull src, const char *_Nonnull url, int *_Nonnull av_error,
                     char *_Nonnull msg, size_t msg_len);

/// rc_av_create + rc_av_open_input in one call, for a caller that never interrupts an open in
/// progress. On success stores the handle in `*out`; on failure `*out` is NULL.
int rc_av_open(const char *_Nonnull url, const rc_av_params *_Nonnull params,
               rc_av_source *_Nullable *_Nonnull out, int *_Nonnull av_error,
               char *_Nonnull msg, size_t msg_len);

/// Closes the stream and frees everything the handle holds.
void rc_av_destroy(rc_av_source *_Nullable src);

/// Makes the blocking call in progress on `src` (open or grab), and every later one, return
/// RC_FAIL "interrupted" promptly (within FFmpeg's 100 ms polling at worst). Thread-safe: sets an
/// atomic flag that the handle's FFmpeg interrupt callback reads; the owner still destroys it.
void rc_av_interrupt(rc_av_source *_Nonnull src);

/// rc_av_grab's status for a passthrough frame that is not a whole JPEG (no SOI, no frame header,
/// or no EOI at its end): a frame came and cannot be stored; the next grab reads on.
enum { RC_AV_BAD_FRAME = 3 };

/// Reads packets and decodes until ONE frame is decoded: RC_OK (in passthrough: until one JPEG
/// packet is read, undecoded, or RC_AV_BAD_FRAME for one that is not whole). RC_END at the end of a file (after
/// flushing the decoder, so the last frames come out first; a read error other than EOF also ends
/// a file, and the message of that first RC_END names it). RC_FAIL for a live stream's error,
/// timeout ("no decodable frame for 3.0 s", "timed out after 3.0 s waiting for data") or end ("the
/// stream ended"). Video packets the decoder rejects are counted (rc_av_undecodable_packets) and
/// skipped; other streams are skipped. After RC_FAIL every later grab fails with the same reason (an
/// interrupted read leaves the demuxer mid-packet): destroy the handle and open a new one.
int rc_av_grab(rc_av_source *_Nonnull src, char *_Nonnull msg, size_t msg_len);

/// The size rc_av_retrieve will write for the frame just grabbed: the params size if set, else the
/// decoded frame's own (which may change from frame to frame). Before the first grab: the params
/// size, else the size the stream announced (0x0 when it did not).
void rc_av_frame_size(const rc_av_source *_Nonnull src, int *_Nonnull width, int *_Nonnull height);

/// 1 while the source hands frames over as JPEGs (params.packets, an MJPEG stream with its own
/// Huffman tables: decided at the first frame, so ask after each grab); 0 when it decodes.
int rc_av_is_passthrough(const rc_av_source *_Nonnull src);

/// The JPEG just grabbed in passthrough: its bytes as the camera sent them, valid until the next
/// grab or destroy. RC_OK, or RC_FAIL when the last grab gave no passthrough frame.
int rc_av_packet(const rc_av_source *_Nonnull src, const uint8_t *_Nullable *_Nonnull data,
                 size_t *_Nonnull size);

/// Converts the grabbed frame to packed BGR24 straight into `dst`, whose rows are `stride` bytes
/// apart (at least 3 x width) and which holds rc_av_frame_size pixels. RC_OK or RC_FAIL.
int rc_av_retrieve(rc_av_source *_Nonnull src, uint8_t *_Nonnull dst, size_t stride,
                   char *_Nonnull msg, size_t msg_len);

/// Converts the grabbed frame to full-range I420 (COpenCV.h's rc_i420) of rc_av_frame_size: the
/// decoder's own planes copied (a 4:2:0 frame at its size; limited range stretched to full), or
/// through swscale for another size or subsampling. RC_OK or RC_FAIL.
struct rc_i420;
int rc_av_retrieve_i420(rc_av_source *_Nonnull src, const struct rc_i420 *_Nonnull dst, char *_Nonnull msg,
                        size_t msg_len);

/// The stream's frame rate (average, else the container's base rate), or 0 when unknown or absurd
/// (>= 1000, as RTSP's 90 kHz clock can make it).
double rc_av_source_fps(const rc_av_source *_Nonnull src);

/// Files: the number of frames the container announces, else duration x fps, rounded; 0 when
/// unknown and for live streams. Lets a truncated file be told apart from a complete one.
int64_t rc_av_frame_count(const rc_av_source *_Nonnull src);

/// Video packets the decoder rejected so far (broken JPEGs; H.264 conceals most damage and outputs
/// the frame, so it rarely counts here). Any thread.
int64_t rc_av_undecodable_packets(const rc_av_source *_Nonnull src);

/// Receives FFmpeg's messages: `tag` is the camera's (params.tag; -1 when no camera can be told),
/// `level` FFmpeg's (0 panic, 8 fatal, 16 error, 24 warning), `line` one line without its trailing
/// newline, valid during the call only. Called from any thread (decoder threads too), possibly from
/// several at once: it must be thread-safe, quick, and must not call rc_av_* functions.
typedef void (*rc_av_log_sink)(int tag, int level, const char *_Nonnull line);

/// Routes every FFmpeg message at warning level or more severe to `sink` (NULL: drops them all);
/// nothing goes to stderr any more. Why: FFmpeg's default logger writes to stderr with no way to
/// tell which camera a line is about. Install once at start, before any source is opened (it calls
/// av_log_set_callback, which is process-wide); replacing the sink later is safe.
void rc_av_set_log_sink(rc_av_log_sink _Nullable sink);

/// OpenCV's own messages (it writes them to std::cerr, which this replaces) to `sink`, each line
/// with the tag the writing thread set with rc_opencv_set_thread_tag (-1: none). Levels on
/// FFmpeg's scale: 16 error, 24 warning, 32 info.
void rc_opencv_set_log_sink(rc_av_log_sink _Nullable sink);
void rc_opencv_set_thread_tag(int tag);

#ifdef __cplusplus
}
#endif
#endif
