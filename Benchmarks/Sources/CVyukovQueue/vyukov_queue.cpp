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

/// CellAlign 16: cells packed as in Vyukov's original; 64: one cache line
/// per cell, as in DropOldestRing.
template <std::size_t CellAlign>
struct alignas(CellAlign) Cell {
    std::atomic<int64_t> sequence;
    uint64_t value;
};

template <std::size_t CellAlign>
struct Queue {
    using CellType = Cell<CellAlign>;
    alignas(kBlock) std::atomic<int64_t> tail;
    alignas(kBlock) std::atomic<int64_t> head;
    alignas(kBlock) CellType *cells;
    int64_t mask;
    int64_t capacity;

    CellType &cell(int64_t position) { return cells[position & mask]; }
};

template <typename Q>
Q *create(int64_t capacity) {
    using CellType = typename Q::CellType;
    int64_t rounded = 2;
    while (rounded < capacity) rounded <<= 1;
    auto *queue = new (std::align_val_t(kBlock), std::nothrow) Q;
    if (!queue) return nullptr;
    auto *cells = static_cast<CellType *>(
        ::operator new(sizeof(CellType) * rounded, std::align_val_t(kBlock), std::nothrow));
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

template <typename Q>
void destroy(Q *queue) {
    ::operator delete(queue->cells, std::align_val_t(kBlock));
    queue->~Q();
    ::operator delete(queue, std::align_val_t(kBlock));
}

template <std::size_t CellAlign>
vq_push_result push(Queue<CellAlign> *q, uint64_t value, uint64_t *out) {
    int attempts = kPushAttemptLimit;
    int64_t lost_oldest = -1; // never compare-exchange twice for a lost position
    int64_t position = q->tail.load(std::memory_order_relaxed);
    for (;;) {
        auto &c = q->cell(position);
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
        } else if (lag == 1 - q->capacity && position - q->capacity != lost_oldest) {
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
            lost_oldest = position - q->capacity;
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

template <std::size_t CellAlign>
bool try_push(Queue<CellAlign> *q, uint64_t value) {
    int64_t position = q->tail.load(std::memory_order_relaxed);
    for (;;) {
        auto &c = q->cell(position);
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

template <std::size_t CellAlign>
bool pop(Queue<CellAlign> *q, uint64_t *out) {
    int64_t position = q->head.load(std::memory_order_relaxed);
    for (;;) {
        auto &c = q->cell(position);
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

} // namespace

// The C API: one set of functions per layout, so that each call goes
// straight to its instantiation.
struct vq_queue : Queue<16> {};
struct vqp_queue : Queue<64> {};

extern "C" vq_queue *vq_create(int64_t capacity) {
    return create<vq_queue>(capacity);
}
extern "C" void vq_destroy(vq_queue *queue) { destroy<vq_queue>(queue); }
extern "C" vq_push_result vq_push(vq_queue *queue, uint64_t value, uint64_t *out) {
    return push<16>(queue, value, out);
}
extern "C" bool vq_try_push(vq_queue *queue, uint64_t value) { return try_push<16>(queue, value); }
extern "C" bool vq_pop(vq_queue *queue, uint64_t *out) { return pop<16>(queue, out); }

extern "C" vqp_queue *vqp_create(int64_t capacity) {
    return create<vqp_queue>(capacity);
}
extern "C" void vqp_destroy(vqp_queue *queue) { destroy<vqp_queue>(queue); }
extern "C" vq_push_result vqp_push(vqp_queue *queue, uint64_t value, uint64_t *out) {
    return push<64>(queue, value, out);
}
extern "C" bool vqp_try_push(vqp_queue *queue, uint64_t value) { return try_push<64>(queue, value); }
extern "C" bool vqp_pop(vqp_queue *queue, uint64_t *out) { return pop<64>(queue, out); }
