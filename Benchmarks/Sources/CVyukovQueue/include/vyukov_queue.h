// Vyukov's bounded multi-producer multi-consumer queue of 64-bit values,
// with the same drop-oldest push as ringcap's DropOldestRing, behind a
// plain C API so that Swift can call it.
//
// It exists only as a yardstick: the benchmarks run the same workloads on
// it and on DropOldestRing. All functions are thread-safe except
// vq_create/vq_destroy, which the caller must order with every other call.
#ifndef VYUKOV_QUEUE_H
#define VYUKOV_QUEUE_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vq_queue vq_queue;

/// Outcome of vq_push.
typedef enum {
    VQ_ADDED = 0,       ///< added, nothing evicted
    VQ_EVICTED = 1,     ///< added, *out holds the evicted oldest value
    VQ_HANDED_BACK = 2, ///< not added without waiting; *out holds the value given
} vq_push_result;

/// Vyukov's layout: 16-byte cells packed four to a cache line.
/// Creates a queue holding `capacity` rounded up to a power of two (>= 2).
/// Returns NULL if the memory cannot be allocated.
vq_queue *_Nullable vq_create(int64_t capacity);
void vq_destroy(vq_queue *_Nonnull queue);

/// Adds `value`; if full, evicts the oldest value into *out. Never waits.
vq_push_result vq_push(vq_queue *_Nonnull queue, uint64_t value, uint64_t *_Nonnull out);
/// Adds `value` if there is room. Never evicts.
bool vq_try_push(vq_queue *_Nonnull queue, uint64_t value);
/// Removes the oldest value into *out; false if empty.
bool vq_pop(vq_queue *_Nonnull queue, uint64_t *_Nonnull out);

/// The same queue with one cache line per cell, the layout DropOldestRing
/// uses: the like-for-like yardstick.
typedef struct vqp_queue vqp_queue;
vqp_queue *_Nullable vqp_create(int64_t capacity);
void vqp_destroy(vqp_queue *_Nonnull queue);
vq_push_result vqp_push(vqp_queue *_Nonnull queue, uint64_t value, uint64_t *_Nonnull out);
bool vqp_try_push(vqp_queue *_Nonnull queue, uint64_t value);
bool vqp_pop(vqp_queue *_Nonnull queue, uint64_t *_Nonnull out);

#ifdef __cplusplus
}
#endif

#endif
