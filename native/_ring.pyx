"""Cython face of ``native/src/ring.h``: the lock-free slot protocol of FrameRing.

``RingCore`` wraps one mapped ring segment (any writable buffer: an ``mmap`` of /dev/shm). It
checks indices before entering C, runs every wait without the GIL and takes it back only to
report. Liveness of peers, names, NumPy views and errors with causes live in ``core.ring``.
"""

from libc.stdint cimport int64_t, uint32_t, uint64_t

cimport ring as lib
from cython.view cimport array as cython_array

MAGIC = lib.EL_RING_MAGIC
VERSION = lib.EL_RING_VERSION
MAX_CONSUMERS = lib.EL_RING_MAX_CONSUMERS
MAX_DIMS = lib.EL_RING_MAX_DIMS
POLICY_BLOCK = lib.EL_POLICY_BLOCK
POLICY_DROP_OLDEST = lib.EL_POLICY_DROP_OLDEST
TIMEOUT = lib.EL_TIMEOUT
CLOSED = lib.EL_CLOSED
INTERRUPTED = lib.EL_INTERRUPTED
PHASE_EMPTY = lib.EL_PHASE_EMPTY
PHASE_WRITING = lib.EL_PHASE_WRITING
PHASE_PUBLISHED = lib.EL_PHASE_PUBLISHED


def total_bytes(uint32_t slot_count, uint64_t frame_bytes):
    """Bytes of shared memory a ring of ``slot_count`` slots of ``frame_bytes`` needs."""
    return lib.el_ring_total_bytes(slot_count, frame_bytes)


def now_ns():
    """CLOCK_MONOTONIC in ns: the clock of ``publish_ns`` (same as ``time.monotonic_ns``)."""
    return lib.el_now_ns()


def wake_probe(int samples, int64_t interval_ns):
    """Latencies (ns) of ``samples`` bare cross-process futex wakes, ``interval_ns`` apart.

    The floor that FrameRing's handoff latency should be read against: no ring, no Python.
    """
    if samples < 1:
        raise ValueError("samples must be >= 1")
    cdef int64_t[::1] out = cython_array((samples,), itemsize=8, format="q")
    cdef int err
    with nogil:
        err = lib.el_wake_probe(&out[0], samples, interval_ns)
    if err:
        raise OSError(err, "wake probe failed")
    return list(out)


cdef class RingCore:
    """One mapped ring. ``release()`` drops the buffer export so the mapping can close."""

    cdef object _view
    cdef lib.el_ring_t *r
    cdef uint32_t hint
    cdef readonly Py_ssize_t size

    def __cinit__(self, buffer):
        cdef unsigned char[::1] view = buffer
        if view.shape[0] < <Py_ssize_t>sizeof(lib.el_ring_t):
            raise ValueError(f"buffer of {view.shape[0]} bytes is too small for a ring header")
        self._view = view
        self.r = <lib.el_ring_t *> &view[0]
        self.size = view.shape[0]
        self.hint = 0

    cdef inline lib.el_ring_t *_ring(self) except NULL:
        if self.r == NULL:
            raise ValueError("ring is closed")
        return self.r

    cdef inline uint32_t _slot(self, long idx) except? 0:
        cdef lib.el_ring_t *r = self._ring()
        if idx < 0 or idx >= r.slot_count:
            raise IndexError(f"slot {idx} out of range 0..{r.slot_count - 1}")
        return <uint32_t> idx

    cdef inline uint32_t _consumer(self, long c) except? 0:
        cdef lib.el_ring_t *r = self._ring()
        if c < 0 or c >= r.max_consumers:
            raise IndexError(f"consumer {c} out of range 0..{r.max_consumers - 1}")
        return <uint32_t> c

    def release(self):
        """Forget the buffer (the caller closes the mapping)."""
        self.r = NULL
        self._view = None

    # -- header -------------------------------------------------------------------------------

    def init(self, uint32_t slot_count, uint64_t frame_bytes, uint32_t policy,
             uint32_t max_consumers, tuple shape, bytes dtype):
        """Write a fresh header into zeroed memory (the creator does this once)."""
        cdef lib.el_ring_t *r = self._ring()
        cdef uint64_t dims[4]
        cdef int i
        if len(shape) > lib.EL_RING_MAX_DIMS:
            raise ValueError(f"at most {lib.EL_RING_MAX_DIMS} dimensions, got {len(shape)}")
        if not 1 <= max_consumers <= lib.EL_RING_MAX_CONSUMERS:
            raise ValueError(f"max_consumers must be 1..{lib.EL_RING_MAX_CONSUMERS}")
        if len(dtype) >= 16:
            raise ValueError("dtype string too long")
        if <Py_ssize_t>lib.el_ring_total_bytes(slot_count, frame_bytes) > self.size:
            raise ValueError("buffer too small for this ring")
        for i in range(4):
            dims[i] = shape[i] if i < len(shape) else 0
        lib.el_ring_init(r, slot_count, frame_bytes, policy, max_consumers, len(shape), dims,
                         dtype)

    def header(self):
        """The immutable header fields as a dict (validated by the caller)."""
        cdef lib.el_ring_t *r = self._ring()
        return {
            "magic": r.magic,
            "version": r.version,
            "slot_count": r.slot_count,
            "policy": r.policy,
            "slot_bytes": r.slot_bytes,
            "data_offset": r.data_offset,
            "total_bytes": r.total_bytes,
            "max_consumers": r.max_consumers,
            "shape": tuple(r.shape[i] for i in range(min(r.ndim, lib.EL_RING_MAX_DIMS))),
            "dtype": bytes(r.dtype).decode("ascii", "replace"),
            "created_ns": r.created_ns,
        }

    def magic_and_version(self):
        cdef lib.el_ring_t *r = self._ring()
        return r.magic, r.version

    def slot_offset(self, long idx):
        cdef uint32_t i = self._slot(idx)
        return self.r.data_offset + <uint64_t> i * self.r.slot_bytes

    # -- producer -----------------------------------------------------------------------------

    def producer_attach(self, int64_t pid, uint64_t start_time):
        """0 when we became the producer, else the pid of the producer already attached."""
        return lib.el_ring_producer_attach(self._ring(), pid, start_time)

    def producer_takeover(self, int64_t dead_pid, int64_t pid, uint64_t start_time):
        return lib.el_ring_producer_takeover(self._ring(), dead_pid, pid, start_time) == 0

    def producer_detach(self, int64_t pid):
        lib.el_ring_producer_detach(self._ring(), pid)

    @property
    def producer(self):
        """(pid, start_time) of the attached producer; pid 0 when none."""
        cdef lib.el_ring_t *r = self._ring()
        return r.producer_pid, r.producer_start_time

    def claim(self, int64_t timeout_ns, int64_t spin_ns):
        """Slot index, or TIMEOUT / INTERRUPTED. Waits without the GIL."""
        cdef lib.el_ring_t *r = self._ring()
        cdef int idx
        with nogil:
            idx = lib.el_ring_claim(r, &self.hint, timeout_ns, spin_ns)
        return idx

    def publish(self, long idx, uint64_t stream_id, int64_t capture_ns, uint64_t flags):
        cdef uint32_t i = self._slot(idx)
        return lib.el_ring_publish(self.r, i, stream_id, capture_ns, flags)

    def abandon(self, long idx):
        lib.el_ring_abandon(self.r, self._slot(idx))

    def close_stream(self):
        lib.el_ring_close_stream(self._ring())

    def reopen_stream(self):
        self._ring().closed = 0

    @property
    def closed(self):
        return bool(self._ring().closed)

    # -- consumers ----------------------------------------------------------------------------

    def attach_consumer(self, int64_t pid, uint64_t start_time, bytes name):
        """Consumer index, or -1 when every consumer record is taken."""
        return lib.el_ring_attach_consumer(self._ring(), pid, start_time, name)

    def detach_consumer(self, long c):
        lib.el_ring_detach_consumer(self.r, self._consumer(c))

    def note_reaped(self):
        self._ring().reaped += 1

    def acquire(self, long c, int64_t timeout_ns, int64_t spin_ns):
        """``(slot, seq, stream_id, capture_ns, publish_ns, flags, taken_ns)`` of the next
        frame, or ``(code, 0, 0, 0, 0, 0, 0)`` with code TIMEOUT / CLOSED / INTERRUPTED.
        ``taken_ns`` is when the C code took the slot (before the GIL is taken back). Waits
        without the GIL; one call per frame, because this is the hot path."""
        cdef uint32_t ci = self._consumer(c)
        cdef lib.el_ring_t *r = self.r
        cdef lib.el_slot_t *s
        cdef int idx
        with nogil:
            idx = lib.el_ring_acquire(r, ci, timeout_ns, spin_ns)
        if idx < 0:
            return (idx, 0, 0, 0, 0, 0, 0)
        s = &r.slots[idx]
        return (idx, lib.el_state_seq(s.state), s.stream_id, s.capture_ns, s.publish_ns, s.flags,
                r.consumers[ci].heartbeat_ns)

    def release_slot(self, long c, long idx):
        """0, or -1 when consumer ``c`` did not hold slot ``idx``."""
        cdef uint32_t ci = self._consumer(c)
        return lib.el_ring_release(self.r, ci, self._slot(idx))

    def slot_meta(self, long idx):
        """(seq, stream_id, capture_ns, publish_ns, flags) of a slot."""
        cdef uint32_t i = self._slot(idx)
        cdef lib.el_slot_t *s = &self.r.slots[i]
        return (lib.el_state_seq(s.state), s.stream_id, s.capture_ns, s.publish_ns, s.flags)

    def slot_state(self, long idx):
        """(phase, seq, pending_mask, held_mask) of a slot, for tests and diagnostics."""
        cdef uint32_t i = self._slot(idx)
        cdef lib.el_slot_t *s = &self.r.slots[i]
        cdef uint64_t st = s.state
        return (lib.el_state_phase(st), lib.el_state_seq(st), s.pending, s.held)

    # -- statistics ---------------------------------------------------------------------------

    def occupancy(self):
        return lib.el_ring_occupancy(self._ring())

    def counters(self):
        cdef lib.el_ring_t *r = self._ring()
        return {
            "published": r.published,
            "active_mask": r.active_mask,
            "reaped": r.reaped,
            "unread": r.unread,
            "takeovers": r.takeovers,
        }

    def consumer_records(self):
        """(index, pid, start_time, name, received, dropped, heartbeat_ns, last_seq) per record
        in use."""
        cdef lib.el_ring_t *r = self._ring()
        cdef lib.el_consumer_t *rec
        out = []
        for c in range(r.max_consumers):
            rec = &r.consumers[c]
            if rec.pid == 0:
                continue
            out.append((c, rec.pid, rec.start_time, bytes(rec.name).decode("utf-8", "replace"),
                        rec.received, rec.dropped, rec.heartbeat_ns, rec.last_seq))
        return out
