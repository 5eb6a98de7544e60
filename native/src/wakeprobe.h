/*
 * The machine's floor for a cross-process handoff: a child process sleeps on a futex in shared
 * memory, the parent wakes it every interval_ns, the child records how long the wake took.
 * No ring, no Python: what FrameRing's handoff latency should be read against (where waking an
 * idle CPU dominates it; docs/decisions/0010-futex-wakeups.md). The child only touches
 * async-signal-safe calls and _exit()s, so forking from a multi-threaded Python process is safe.
 */
#ifndef EDGELOOP_WAKEPROBE_H
#define EDGELOOP_WAKEPROBE_H

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ring.h"

typedef struct {
    _Atomic uint32_t word;
    _Atomic uint32_t waiting;
    _Atomic int64_t stamp_ns;
    int64_t latency_ns[];
} el_wake_probe_t;

/* Fill out[0..n) with wake latencies in ns; returns 0, or an errno. */
static inline int el_wake_probe(int64_t *out, int n, int64_t interval_ns)
{
    size_t size = sizeof(el_wake_probe_t) + (size_t)n * sizeof(int64_t);
    el_wake_probe_t *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                              -1, 0);
    pid_t pid;
    int i, status;
    if (p == MAP_FAILED)
        return errno;
    pid = fork();
    if (pid < 0) {
        int err = errno;
        munmap(p, size);
        return err;
    }
    if (pid == 0) {
        for (i = 0; i < n; i++) {
            uint32_t v;
            while ((v = atomic_load(&p->word)) <= (uint32_t)i) {
                atomic_fetch_add(&p->waiting, 1);
                if (atomic_load(&p->word) <= (uint32_t)i)
                    el_futex_wait(&p->word, v, 1000000000LL);
                atomic_fetch_sub(&p->waiting, 1);
            }
            p->latency_ns[i] = el_now_ns() - atomic_load(&p->stamp_ns);
        }
        _exit(0);
    }
    for (i = 0; i < n; i++) {
        struct timespec pause = {(time_t)(interval_ns / 1000000000LL),
                                 (long)(interval_ns % 1000000000LL)};
        nanosleep(&pause, NULL);
        atomic_store(&p->stamp_ns, el_now_ns());
        atomic_fetch_add(&p->word, 1);
        if (atomic_load(&p->waiting))
            el_futex_wake_all(&p->word);
    }
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    memcpy(out, p->latency_ns, (size_t)n * sizeof(int64_t));
    munmap(p, size);
    return 0;
}

#endif /* EDGELOOP_WAKEPROBE_H */
