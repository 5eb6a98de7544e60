/* Run-time CPU dispatch shared by the kernels' .c files (private: not part of kernels.h).
 *
 * Wheels are built for the baseline of their architecture (no -march=native). On x86-64 with GCC
 * and glibc (ifunc), EL_CLONES compiles a function three times -- x86-64-v4 (AVX-512), x86-64-v3
 * (AVX2 + FMA + F16C) and the baseline -- and the dynamic loader picks one for the CPU it runs on.
 * Everywhere else (aarch64 Jetson, clang, musl) the plain C is compiled once for the baseline,
 * which on aarch64 already has NEON. -DEL_NO_DISPATCH forces that portable build on x86-64 too
 * (to test and time it). The loops under EL_CLONES are written so that GCC's and
 * clang's vectorisers handle them: unit stride, restrict pointers, no calls.
 */
#ifndef EDGELOOP_DISPATCH_H
#define EDGELOOP_DISPATCH_H

#include <stdlib.h> /* defines __GLIBC__ where glibc is the C library */

#if !defined(EL_NO_DISPATCH) && defined(__x86_64__) && defined(__GNUC__) && \
    !defined(__clang__) && __GNUC__ >= 12 && defined(__GLIBC__)
#define EL_X86_DISPATCH 1
#define EL_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define EL_X86_DISPATCH 0
#define EL_CLONES
#endif

#endif /* EDGELOOP_DISPATCH_H */
