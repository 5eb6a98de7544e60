/*
 * FrameRing's shared-memory layout and its lock-free protocol (C11 atomics + Linux futex).
 *
 * One producer, up to 64 consumers (fan-out), fixed-size slots. Each slot carries a 64-bit
 * `state` word (sequence number << 2 | phase) and two consumer bitmasks:
 *   pending -- consumers that have not taken this frame yet,
 *   held    -- consumers currently reading it (a NumPy view is alive).
 * The producer claims a slot by storing phase WRITING and then checking `held`; a consumer takes
 * a frame by setting its `held` bit and then re-checking `state`. Both sides use sequentially
 * consistent operations, so (Dekker) at least one of them sees the other and backs off: the
 * producer never overwrites a frame that a consumer is reading, and a consumer never reads a
 * frame that is being overwritten.
 *
 * Waiting: spin for a few microseconds, then sleep on a futex word (`pub_futex` for consumers,
 * `rel_futex` for the producer). Wakers only enter the kernel when someone announced it sleeps.
 *
 * Nothing here allocates, takes a lock or knows about Python; every function may run without
 * the GIL. Liveness of peers (pid checks) is decided by the caller, which then calls
 * el_ring_detach_consumer() or el_ring_producer_takeover() on the dead peer's behalf.
 */
#ifndef EDGELOOP_RING_H
#define EDGELOOP_RING_H

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define EL_RING_MAGIC 0x474E49524C454445ULL /* "EDELRING" read as little-endian bytes */
#define EL_RING_VERSION 1u
#define EL_RING_MAX_CONSUMERS 64
#define EL_RING_MAX_DIMS 4
#define EL_RING_ALIGN 4096u

#define EL_PHASE_EMPTY 0u
#define EL_PHASE_WRITING 1u
#define EL_PHASE_PUBLISHED 2u
#define EL_PHASE_MASK 3u

#define EL_POLICY_BLOCK 0u
#define EL_POLICY_DROP_OLDEST 1u

/* Return codes of the waiting calls (slot indices are >= 0). */
#define EL_TIMEOUT (-1)
#define EL_CLOSED (-2)
#define EL_INTERRUPTED (-3)

typedef struct {
    _Atomic uint64_t state;   /* seq << 2 | phase */
    _Atomic uint64_t pending; /* consumers that have not taken this frame */
    _Atomic uint64_t held;    /* consumers holding a view of it */
    int64_t capture_ns;       /* when the camera captured it (caller's clock) */
    int64_t publish_ns;       /* CLOCK_MONOTONIC at publication */
    uint64_t stream_id;
    uint64_t flags;
    uint64_t nbytes;
    uint32_t ndim;
    uint32_t _reserved;
    uint64_t shape[EL_RING_MAX_DIMS];
    char dtype[16];           /* NumPy dtype.str, e.g. "|u1" */
    char _pad[8];
} el_slot_t; /* 128 bytes */

typedef struct {
    _Atomic int64_t pid;      /* 0: record free */
    uint64_t start_time;      /* /proc/<pid>/stat starttime, guards against pid reuse */
    _Atomic uint64_t received;
    _Atomic uint64_t dropped; /* frames stolen from it by a drop_oldest producer */
    _Atomic int64_t heartbeat_ns;
    _Atomic uint64_t last_seq;
    char name[32];
    char _pad[48];
} el_consumer_t; /* 128 bytes */

typedef struct {
    /* Immutable after creation. */
    uint64_t magic;
    uint32_t version;
    uint32_t header_bytes;
    uint32_t slot_count;
    uint32_t policy;
    uint64_t slot_bytes;
    uint64_t data_offset;
    uint64_t total_bytes;
    uint32_t ndim;
    uint32_t max_consumers;
    uint64_t shape[EL_RING_MAX_DIMS];
    char dtype[16];
    int64_t created_ns;
    char _pad0[32];
    /* Consumers sleep on pub_futex; the producer bumps it on every publication. */
    _Alignas(64) _Atomic uint32_t pub_futex;
    _Atomic uint32_t consumer_waiters;
    _Atomic uint64_t published;     /* last sequence number handed out (first frame: 1) */
    _Atomic int64_t producer_pid;   /* 0: no producer attached */
    uint64_t producer_start_time;
    _Atomic uint32_t closed;        /* end of stream: producer closed or died */
    _Atomic uint32_t _pad1;
    _Atomic uint64_t takeovers;     /* producers that replaced a dead one */
    /* The producer sleeps on rel_futex; consumers bump it on every release. */
    _Alignas(64) _Atomic uint32_t rel_futex;
    _Atomic uint32_t producer_waiters;
    _Atomic uint64_t active_mask;   /* registered consumers */
    _Atomic uint64_t reaped;        /* consumers detached on a dead process's behalf */
    _Atomic uint64_t unread;        /* frames published while no consumer was registered */
    _Alignas(64) el_consumer_t consumers[EL_RING_MAX_CONSUMERS];
    el_slot_t slots[];
} el_ring_t;

/* ------------------------------------------------------------------------------------------ */
/* Small helpers                                                                              */

static inline int64_t el_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static inline void el_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

/* Sleep while *addr == expected, at most timeout_ns (< 0: forever). Returns 0 or an errno. */
static inline int el_futex_wait(_Atomic uint32_t *addr, uint32_t expected, int64_t timeout_ns)
{
    struct timespec ts;
    struct timespec *tsp = NULL;
    if (timeout_ns >= 0) {
        ts.tv_sec = (time_t)(timeout_ns / 1000000000LL);
        ts.tv_nsec = (long)(timeout_ns % 1000000000LL);
        tsp = &ts;
    }
    /* Not FUTEX_PRIVATE_FLAG: the word lives in memory shared between processes. */
    if (syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT, expected, tsp, NULL, 0) == -1)
        return errno;
    return 0;
}

static inline void el_futex_wake_all(_Atomic uint32_t *addr)
{
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

static inline uint64_t el_state_seq(uint64_t state) { return state >> 2; }
static inline uint32_t el_state_phase(uint64_t state) { return (uint32_t)(state & EL_PHASE_MASK); }

static inline size_t el_ring_header_bytes(uint32_t slot_count)
{
    return sizeof(el_ring_t) + (size_t)slot_count * sizeof(el_slot_t);
}

static inline uint64_t el_align_up(uint64_t n, uint64_t align)
{
    return (n + align - 1) / align * align;
}

static inline unsigned char *el_ring_slot_data(el_ring_t *r, uint32_t idx)
{
    return (unsigned char *)r + r->data_offset + (uint64_t)idx * r->slot_bytes;
}

/* ------------------------------------------------------------------------------------------ */
/* Creation                                                                                    */

/* Total bytes a ring needs; the caller maps that many zeroed bytes and calls el_ring_init. */
static inline uint64_t el_ring_total_bytes(uint32_t slot_count, uint64_t frame_bytes)
{
    uint64_t data_offset = el_align_up(el_ring_header_bytes(slot_count), EL_RING_ALIGN);
    return data_offset + (uint64_t)slot_count * el_align_up(frame_bytes, EL_RING_ALIGN);
}

static inline void el_ring_init(el_ring_t *r, uint32_t slot_count, uint64_t frame_bytes,
                                uint32_t policy, uint32_t max_consumers, uint32_t ndim,
                                const uint64_t *shape, const char *dtype)
{
    uint32_t i;
    r->version = EL_RING_VERSION;
    r->header_bytes = (uint32_t)el_ring_header_bytes(slot_count);
    r->slot_count = slot_count;
    r->policy = policy;
    r->slot_bytes = el_align_up(frame_bytes, EL_RING_ALIGN);
    r->data_offset = el_align_up(r->header_bytes, EL_RING_ALIGN);
    r->total_bytes = el_ring_total_bytes(slot_count, frame_bytes);
    r->ndim = ndim;
    r->max_consumers = max_consumers;
    for (i = 0; i < ndim && i < EL_RING_MAX_DIMS; i++)
        r->shape[i] = shape[i];
    strncpy(r->dtype, dtype, sizeof(r->dtype) - 1);
    r->created_ns = el_now_ns();
    /* Publish the magic last: an attacher that sees it sees a complete header. */
    atomic_thread_fence(memory_order_seq_cst);
    r->magic = EL_RING_MAGIC;
}

/* ------------------------------------------------------------------------------------------ */
/* Producer side                                                                               */

static inline void el_ring_notify_release(el_ring_t *r)
{
    atomic_fetch_add(&r->rel_futex, 1);
    if (atomic_load(&r->producer_waiters))
        el_futex_wake_all(&r->rel_futex);
}

/* Try to own slot `s` whose state was `st`. Fails (0) if a consumer holds it. Frames still
 * pending for some consumers are dropped for them and counted. */
static inline int el_ring_take(el_ring_t *r, el_slot_t *s, uint64_t st)
{
    uint64_t dropped;
    atomic_store(&s->state, (st & ~(uint64_t)EL_PHASE_MASK) | EL_PHASE_WRITING);
    if (atomic_load(&s->held) != 0) {
        atomic_store(&s->state, st);
        return 0;
    }
    dropped = atomic_exchange(&s->pending, 0);
    while (dropped) {
        int c = __builtin_ctzll(dropped);
        atomic_fetch_add(&r->consumers[c].dropped, 1);
        dropped &= dropped - 1;
    }
    return 1;
}

/* One non-blocking attempt to claim a slot; returns its index or -1.
 * Free slots are taken lowest index first, not round robin: the frames in flight then stay in
 * the same few slots, which stay in cache (docs/decisions/0014-zero-copy-ring.md). */
static inline int el_ring_try_claim(el_ring_t *r, uint32_t *hint)
{
    uint32_t n = r->slot_count, k;
    int best = -1;
    uint64_t best_st = 0, best_seq = UINT64_MAX;

    for (k = 0; k < n; k++) {
        uint32_t i = k;
        el_slot_t *s = &r->slots[i];
        uint64_t st = atomic_load(&s->state);
        if (el_state_phase(st) == EL_PHASE_WRITING)
            continue;
        if (atomic_load(&s->pending) != 0 || atomic_load(&s->held) != 0)
            continue;
        if (el_ring_take(r, s, st)) {
            *hint = (i + 1) % n;
            return (int)i;
        }
    }
    if (r->policy != EL_POLICY_DROP_OLDEST)
        return -1;
    /* Live camera: overwrite the oldest frame that nobody is reading right now. */
    for (k = 0; k < n; k++) {
        el_slot_t *s = &r->slots[k];
        uint64_t st = atomic_load(&s->state);
        if (el_state_phase(st) != EL_PHASE_PUBLISHED || atomic_load(&s->held) != 0)
            continue;
        if (el_state_seq(st) < best_seq) {
            best_seq = el_state_seq(st);
            best_st = st;
            best = (int)k;
        }
    }
    if (best >= 0 && el_ring_take(r, &r->slots[best], best_st)) {
        *hint = ((uint32_t)best + 1) % n;
        return best;
    }
    return -1;
}

/* The one waiting loop of both ends: call try_fn until it returns a slot index; in between
 * spin up to spin_ns, then announce ourselves in *waiters and sleep on *futex (whose value was
 * read before the attempt, so a change in between is never missed). With `closed` set, an
 * attempt that finds nothing after the stream was closed returns EL_CLOSED. */
typedef int (*el_try_fn)(el_ring_t *r, void *ctx);

static inline int el_ring_wait(el_ring_t *r, el_try_fn try_fn, void *ctx,
                               _Atomic uint32_t *futex, _Atomic uint32_t *waiters,
                               _Atomic uint32_t *closed, int64_t timeout_ns, int64_t spin_ns)
{
    int64_t now = el_now_ns();
    int64_t deadline = timeout_ns < 0 ? -1 : now + timeout_ns;
    int64_t spin_until = now + (spin_ns > 0 ? spin_ns : 0);
    for (;;) {
        uint32_t seen = atomic_load(futex);
        uint32_t was_closed = closed ? atomic_load(closed) : 0;
        int idx = try_fn(r, ctx);
        int err;
        if (idx >= 0)
            return idx;
        if (was_closed)
            return EL_CLOSED;
        now = el_now_ns();
        if (deadline >= 0 && now >= deadline)
            return EL_TIMEOUT;
        if (now < spin_until) {
            el_cpu_relax();
            continue;
        }
        atomic_fetch_add(waiters, 1);
        idx = try_fn(r, ctx);
        if (idx >= 0) {
            atomic_fetch_sub(waiters, 1);
            return idx;
        }
        err = el_futex_wait(futex, seen, deadline < 0 ? -1 : deadline - now);
        atomic_fetch_sub(waiters, 1);
        if (err == EINTR)
            return EL_INTERRUPTED;
    }
}

static int el_ring_try_claim_cb(el_ring_t *r, void *hint)
{
    return el_ring_try_claim(r, (uint32_t *)hint);
}

/* Claim a slot to write into, waiting up to timeout_ns (< 0: forever). Spins up to spin_ns
 * first. Returns the slot index, EL_TIMEOUT or EL_INTERRUPTED (a signal arrived). */
static inline int el_ring_claim(el_ring_t *r, uint32_t *hint, int64_t timeout_ns, int64_t spin_ns)
{
    return el_ring_wait(r, el_ring_try_claim_cb, hint, &r->rel_futex, &r->producer_waiters, NULL,
                        timeout_ns, spin_ns);
}

/* Give a claimed slot back unpublished. */
static inline void el_ring_abandon(el_ring_t *r, uint32_t idx)
{
    atomic_store(&r->slots[idx].state, (uint64_t)EL_PHASE_EMPTY);
    el_ring_notify_release(r);
}

/* Publish a claimed slot whose pixels are written; returns its sequence number. */
static inline uint64_t el_ring_publish(el_ring_t *r, uint32_t idx, uint64_t stream_id,
                                       int64_t capture_ns, uint64_t flags)
{
    el_slot_t *s = &r->slots[idx];
    uint64_t seq = atomic_fetch_add(&r->published, 1) + 1;
    uint64_t mask, still;
    uint32_t i;
    s->stream_id = stream_id;
    s->capture_ns = capture_ns;
    s->flags = flags;
    s->ndim = r->ndim;
    s->nbytes = r->slot_bytes;
    for (i = 0; i < EL_RING_MAX_DIMS; i++)
        s->shape[i] = r->shape[i];
    memcpy(s->dtype, r->dtype, sizeof(s->dtype));
    s->publish_ns = el_now_ns();
    mask = atomic_load(&r->active_mask);
    atomic_store(&s->pending, mask);
    /* A consumer that detached meanwhile scrubbed the slots before our store: drop its bit. */
    still = atomic_load(&r->active_mask);
    if (mask & ~still)
        atomic_fetch_and(&s->pending, still);
    if (!mask)
        atomic_fetch_add(&r->unread, 1);
    atomic_store(&s->state, (seq << 2) | EL_PHASE_PUBLISHED);
    atomic_fetch_add(&r->pub_futex, 1);
    if (atomic_load(&r->consumer_waiters))
        el_futex_wake_all(&r->pub_futex);
    return seq;
}

/* Mark end of stream: consumers drain what is published, then see EL_CLOSED. */
static inline void el_ring_close_stream(el_ring_t *r)
{
    atomic_store(&r->closed, 1);
    atomic_fetch_add(&r->pub_futex, 1);
    el_futex_wake_all(&r->pub_futex);
}

/* Become the producer; 0 on success, else the pid of the producer already attached. */
static inline int64_t el_ring_producer_attach(el_ring_t *r, int64_t pid, uint64_t start_time)
{
    int64_t expected = 0;
    if (!atomic_compare_exchange_strong(&r->producer_pid, &expected, pid))
        return expected;
    r->producer_start_time = start_time;
    atomic_store(&r->closed, 0);
    return 0;
}

/* Replace a producer that died (the caller checked): slots it was writing become empty. */
static inline int el_ring_producer_takeover(el_ring_t *r, int64_t dead_pid, int64_t pid,
                                            uint64_t start_time)
{
    uint32_t i;
    int64_t expected = dead_pid;
    if (!atomic_compare_exchange_strong(&r->producer_pid, &expected, pid))
        return -1;
    r->producer_start_time = start_time;
    for (i = 0; i < r->slot_count; i++) {
        el_slot_t *s = &r->slots[i];
        if (el_state_phase(atomic_load(&s->state)) == EL_PHASE_WRITING) {
            atomic_store(&s->pending, 0);
            atomic_store(&s->state, (uint64_t)EL_PHASE_EMPTY);
        }
    }
    atomic_fetch_add(&r->takeovers, 1);
    atomic_store(&r->closed, 0);
    return 0;
}

static inline void el_ring_producer_detach(el_ring_t *r, int64_t pid)
{
    int64_t expected = pid;
    atomic_compare_exchange_strong(&r->producer_pid, &expected, 0);
}

/* ------------------------------------------------------------------------------------------ */
/* Consumer side                                                                               */

/* Register a consumer; returns its index, or -1 when all records are taken. */
static inline int el_ring_attach_consumer(el_ring_t *r, int64_t pid, uint64_t start_time,
                                          const char *name)
{
    uint32_t c;
    for (c = 0; c < r->max_consumers && c < EL_RING_MAX_CONSUMERS; c++) {
        el_consumer_t *rec = &r->consumers[c];
        int64_t expected = 0;
        if (!atomic_compare_exchange_strong(&rec->pid, &expected, pid))
            continue;
        rec->start_time = start_time;
        atomic_store(&rec->received, 0);
        atomic_store(&rec->dropped, 0);
        atomic_store(&rec->heartbeat_ns, el_now_ns());
        atomic_store(&rec->last_seq, 0);
        memset(rec->name, 0, sizeof(rec->name));
        strncpy(rec->name, name, sizeof(rec->name) - 1);
        atomic_fetch_or(&r->active_mask, 1ULL << c);
        return (int)c;
    }
    return -1;
}

/* Unregister consumer c (itself, or on behalf of a dead process) and free what it held. */
static inline void el_ring_detach_consumer(el_ring_t *r, uint32_t c)
{
    uint64_t bit = 1ULL << c;
    uint32_t i;
    atomic_fetch_and(&r->active_mask, ~bit);
    for (i = 0; i < r->slot_count; i++) {
        atomic_fetch_and(&r->slots[i].pending, ~bit);
        atomic_fetch_and(&r->slots[i].held, ~bit);
    }
    atomic_store(&r->consumers[c].pid, 0);
    el_ring_notify_release(r);
}

/* One non-blocking attempt to take the oldest frame pending for `bit`; index or -1. */
static inline int el_ring_try_acquire(el_ring_t *r, uint64_t bit)
{
    uint32_t n = r->slot_count, i;
    for (;;) {
        int best = -1;
        uint64_t best_st = 0, best_seq = UINT64_MAX;
        el_slot_t *s;
        for (i = 0; i < n; i++) {
            uint64_t st = atomic_load(&r->slots[i].state);
            if (el_state_phase(st) != EL_PHASE_PUBLISHED)
                continue;
            if (!(atomic_load(&r->slots[i].pending) & bit))
                continue;
            if (el_state_seq(st) < best_seq) {
                best_seq = el_state_seq(st);
                best_st = st;
                best = (int)i;
            }
        }
        if (best < 0)
            return -1;
        /* The scan is not atomic: a frame published into a slot already passed carries a lower
         * sequence number. The single producer publishes in sequence order, so every frame
         * older than `best` was visible once `best` was: one more pass finds the oldest. */
        for (i = 0; i < n; i++) {
            uint64_t st = atomic_load(&r->slots[i].state);
            if (el_state_phase(st) == EL_PHASE_PUBLISHED && el_state_seq(st) < best_seq &&
                (atomic_load(&r->slots[i].pending) & bit)) {
                best_seq = el_state_seq(st);
                best_st = st;
                best = (int)i;
            }
        }
        s = &r->slots[best];
        atomic_fetch_or(&s->held, bit);
        if (atomic_load(&s->state) == best_st && (atomic_load(&s->pending) & bit)) {
            atomic_fetch_and(&s->pending, ~bit);
            return best;
        }
        /* The producer is overwriting it (the frame is dropped for us): let go, look again. */
        atomic_fetch_and(&s->held, ~bit);
        el_ring_notify_release(r);
    }
}

static inline void el_ring_note_received(el_ring_t *r, uint32_t c, uint32_t idx)
{
    el_consumer_t *rec = &r->consumers[c];
    atomic_fetch_add(&rec->received, 1);
    atomic_store(&rec->heartbeat_ns, el_now_ns());
    atomic_store(&rec->last_seq, el_state_seq(atomic_load(&r->slots[idx].state)));
}

static int el_ring_try_acquire_cb(el_ring_t *r, void *bit)
{
    return el_ring_try_acquire(r, *(uint64_t *)bit);
}

/* Take the next frame for consumer c, waiting up to timeout_ns (< 0: forever), spinning up to
 * spin_ns first. Returns the slot index, EL_TIMEOUT, EL_CLOSED (end of stream, all drained) or
 * EL_INTERRUPTED. */
static inline int el_ring_acquire(el_ring_t *r, uint32_t c, int64_t timeout_ns, int64_t spin_ns)
{
    uint64_t bit = 1ULL << c;
    int idx = el_ring_wait(r, el_ring_try_acquire_cb, &bit, &r->pub_futex, &r->consumer_waiters,
                           &r->closed, timeout_ns, spin_ns);
    if (idx >= 0)
        el_ring_note_received(r, c, (uint32_t)idx);
    return idx;
}

/* Let go of a frame; returns 0, or -1 if consumer c did not hold that slot. */
static inline int el_ring_release(el_ring_t *r, uint32_t c, uint32_t idx)
{
    uint64_t bit = 1ULL << c;
    uint64_t before = atomic_fetch_and(&r->slots[idx].held, ~bit);
    if (!(before & bit))
        return -1;
    el_ring_notify_release(r);
    return 0;
}

/* Frames published and not yet released by every consumer (the queue depth). */
static inline uint32_t el_ring_occupancy(el_ring_t *r)
{
    uint32_t i, busy = 0;
    for (i = 0; i < r->slot_count; i++) {
        el_slot_t *s = &r->slots[i];
        if (el_state_phase(atomic_load(&s->state)) == EL_PHASE_PUBLISHED &&
            (atomic_load(&s->pending) | atomic_load(&s->held)) != 0)
            busy++;
    }
    return busy;
}

#endif /* EDGELOOP_RING_H */
