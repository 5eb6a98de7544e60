# C declarations of native/src/ring.h, once. Cimport as: `from ring cimport *` is avoided;
# use `cimport ring as lib` and call `lib.el_ring_claim(...)`.
from libc.stdint cimport int64_t, uint32_t, uint64_t


cdef extern from "ring.h" nogil:
    uint64_t EL_RING_MAGIC
    uint32_t EL_RING_VERSION
    int EL_RING_MAX_CONSUMERS
    int EL_RING_MAX_DIMS
    uint32_t EL_PHASE_EMPTY
    uint32_t EL_PHASE_WRITING
    uint32_t EL_PHASE_PUBLISHED
    uint32_t EL_POLICY_BLOCK
    uint32_t EL_POLICY_DROP_OLDEST
    int EL_TIMEOUT
    int EL_CLOSED
    int EL_INTERRUPTED

    ctypedef struct el_slot_t:
        uint64_t state
        uint64_t pending
        uint64_t held
        int64_t capture_ns
        int64_t publish_ns
        uint64_t stream_id
        uint64_t flags
        uint64_t nbytes
        uint32_t ndim
        uint64_t shape[4]
        char dtype[16]

    ctypedef struct el_consumer_t:
        int64_t pid
        uint64_t start_time
        uint64_t received
        uint64_t dropped
        int64_t heartbeat_ns
        uint64_t last_seq
        char name[32]

    ctypedef struct el_ring_t:
        uint64_t magic
        uint32_t version
        uint32_t header_bytes
        uint32_t slot_count
        uint32_t policy
        uint64_t slot_bytes
        uint64_t data_offset
        uint64_t total_bytes
        uint32_t ndim
        uint32_t max_consumers
        uint64_t shape[4]
        char dtype[16]
        int64_t created_ns
        uint64_t published
        int64_t producer_pid
        uint64_t producer_start_time
        uint32_t closed
        uint64_t takeovers
        uint64_t active_mask
        uint64_t reaped
        uint64_t unread
        el_consumer_t consumers[64]
        el_slot_t slots[1]

    int64_t el_now_ns()
    uint64_t el_state_seq(uint64_t state)
    uint32_t el_state_phase(uint64_t state)
    uint64_t el_ring_total_bytes(uint32_t slot_count, uint64_t frame_bytes)
    void el_ring_init(el_ring_t *r, uint32_t slot_count, uint64_t frame_bytes, uint32_t policy,
                      uint32_t max_consumers, uint32_t ndim, const uint64_t *shape,
                      const char *dtype)
    unsigned char *el_ring_slot_data(el_ring_t *r, uint32_t idx)
    int el_ring_try_claim(el_ring_t *r, uint32_t *hint)
    int el_ring_claim(el_ring_t *r, uint32_t *hint, int64_t timeout_ns, int64_t spin_ns)
    void el_ring_abandon(el_ring_t *r, uint32_t idx)
    uint64_t el_ring_publish(el_ring_t *r, uint32_t idx, uint64_t stream_id, int64_t capture_ns,
                             uint64_t flags)
    void el_ring_close_stream(el_ring_t *r)
    int64_t el_ring_producer_attach(el_ring_t *r, int64_t pid, uint64_t start_time)
    int el_ring_producer_takeover(el_ring_t *r, int64_t dead_pid, int64_t pid,
                                  uint64_t start_time)
    void el_ring_producer_detach(el_ring_t *r, int64_t pid)
    int el_ring_attach_consumer(el_ring_t *r, int64_t pid, uint64_t start_time, const char *name)
    void el_ring_detach_consumer(el_ring_t *r, uint32_t c)
    int el_ring_try_acquire(el_ring_t *r, uint64_t bit)
    int el_ring_acquire(el_ring_t *r, uint32_t c, int64_t timeout_ns, int64_t spin_ns)
    int el_ring_release(el_ring_t *r, uint32_t c, uint32_t idx)
    uint32_t el_ring_occupancy(el_ring_t *r)


cdef extern from "wakeprobe.h" nogil:
    int el_wake_probe(int64_t *out, int n, int64_t interval_ns)
