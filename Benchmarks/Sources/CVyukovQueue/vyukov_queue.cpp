// The C++ yardstick: Vyukov's bounded MPMC queue
// (https://www.1024cores.net/home/lock-free-algorithms/queues/bounded-mpmc-queue)
// written the way a C++ project would, plus the same eviction rule as
// DropOldestRing so that eviction-mode workloads compare like with like.
// Orderings and pairings are the same as in DropOldestRing.swift.
#include "vyukov_queue.h"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <new>

namespace {

constexpr std::size_t kBlock = 128; // adjacent-line prefetch pairs 64-byte lines
constexpr int kPushAttemptLimit = 128;

struct Cell {
    std::atomic<int64_t> sequence;
    uint64_t value;
};

} // namespace

struct vq_queue {
    alignas(kBlock) std::atomic<int64_t> tail;
    alignas(kBlock) std::atomic<int64_t> head;
    alignas(kBlock) Cell *cells;
    int64_t mask;
    int64_t capacity;

    Cell &cell(int64_t position) { return cells[position & mask]; }
};

extern "C" vq_queue *vq_create(int64_t capacity) {
    int64_t rounded = 2;
    while (rounded < capacity) rounded <<= 1;
    auto *queue = new (std::align_val_t(kBlock), std::nothrow) vq_queue;
    if (!queue) return nullptr;
    auto *cells = static_cast<Cell *>(
        ::operator new(sizeof(Cell) * rounded, std::align_val_t(kBlock), std::nothrow));
    if (!cells) {
        ::operator delete(queue, std::align_val_t(kBlock));
        return nullptr;
    }
    for (int64_t i = 0; i < rounded; ++i) {
        new (&cells[i].sequence) std::atomic<int64_t>(i);
    }
    queue->tail.store(0, std::memory_order_relaxed);
    queue->head.store(0, std::memory_order_relaxed);
    queue->cells = cells;
    queue->mask = rounded - 1;
    queue->capacity = rounded;
    return queue;
}

extern "C" void vq_destroy(vq_queue *queue) {
    ::operator delete(queue->cells, std::align_val_t(kBlock));
    queue->~vq_queue();
    ::operator delete(queue, std::align_val_t(kBlock));
}

extern "C" vq_push_result vq_push(vq_queue *q, uint64_t value, uint64_t *out) {
    int attempts = kPushAttemptLimit;
    int64_t position = q->tail.load(std::memory_order_relaxed);
    for (;;) {
        Cell &c = q->cell(position);
        // Acquire: pairs with the release store of whoever last owned the cell.
        int64_t sequence = c.sequence.load(std::memory_order_acquire);
        int64_t lag = sequence - position;
        if (lag == 0) {
            // Relaxed: pairs with the tail CAS of other producers.
            if (q->tail.compare_exchange_weak(position, position + 1, std::memory_order_relaxed)) {
                c.value = value;
                // Release: pairs with the acquire load in pop / evicting push.
                c.sequence.store(position + 1, std::memory_order_release);
                return VQ_ADDED;
            }
        } else if (lag == 1 - q->capacity) {
            int64_t oldest = position - q->capacity;
            // Relaxed: pairs with the head CAS in pop and other evicting pushes.
            if (q->head.compare_exchange_strong(oldest, oldest + 1, std::memory_order_relaxed)) {
                *out = c.value;
                c.value = value;
                // Relaxed: tail cannot have moved while we own its cell.
                q->tail.store(position + 1, std::memory_order_relaxed);
                // Release: pairs with the acquire load in pop / evicting push.
                c.sequence.store(position + 1, std::memory_order_release);
                return VQ_EVICTED;
            }
            position = q->tail.load(std::memory_order_relaxed);
        } else {
            position = q->tail.load(std::memory_order_relaxed);
        }
        if (--attempts == 0) {
            *out = value;
            return VQ_HANDED_BACK;
        }
    }
}

extern "C" bool vq_try_push(vq_queue *q, uint64_t value) {
    int64_t position = q->tail.load(std::memory_order_relaxed);
    for (;;) {
        Cell &c = q->cell(position);
        // Acquire: pairs with the release store in pop / evicting push.
        int64_t sequence = c.sequence.load(std::memory_order_acquire);
        int64_t lag = sequence - position;
        if (lag == 0) {
            // Relaxed: pairs with the tail CAS of other producers.
            if (q->tail.compare_exchange_weak(position, position + 1, std::memory_order_relaxed)) {
                c.value = value;
                // Release: pairs with the acquire load in pop / evicting push.
                c.sequence.store(position + 1, std::memory_order_release);
                return true;
            }
        } else if (lag < 0) {
            return false;
        } else {
            position = q->tail.load(std::memory_order_relaxed);
        }
    }
}

extern "C" bool vq_pop(vq_queue *q, uint64_t *out) {
    int64_t position = q->head.load(std::memory_order_relaxed);
    for (;;) {
        Cell &c = q->cell(position);
        // Acquire: pairs with the release store in push / try_push.
        int64_t sequence = c.sequence.load(std::memory_order_acquire);
        int64_t lag = sequence - (position + 1);
        if (lag == 0) {
            // Relaxed: pairs with the head CAS of other pops / evicting pushes.
            if (q->head.compare_exchange_weak(position, position + 1, std::memory_order_relaxed)) {
                *out = c.value;
                // Release: pairs with the acquire load of the next lap's producer.
                c.sequence.store(position + q->capacity, std::memory_order_release);
                return true;
            }
        } else if (lag < 0) {
            return false;
        } else {
            position = q->head.load(std::memory_order_relaxed);
        }
    }
}
