/* Preprocess: HxWx3 uint8 -> resize (bilinear or area) into a region of three planes ->
 * pixel * scale + bias -> float32 or float16, written straight into the caller's tensor, with
 * the rest of each plane filled with the (already normalised) pad value.
 *
 * Bilinear (the hot path) is fused: per output row, the 6 bytes of each output column's two
 * source pixels are fetched once per source row into a small array of 64-bit words (one
 * unaligned load each), then one vectorised loop unpacks the bytes, interpolates horizontally
 * and vertically, folds in scale and bias and writes the three planes. At 1080p -> 224 this is
 * bound by reading the ~2.6 MB of source rows that hold the taps, not by arithmetic. Channel order (BGR -> RGB) costs nothing: it only decides which plane
 * pointer each input channel writes to. The fetched source rows are kept, so an upscale (where
 * output rows share source rows) fetches each source row once.
 *
 * Area (box filter, for strong downscale) sums rows vertically (vectorised, all columns), then
 * columns from a dense table of taps with exact overlap weights.
 *
 * Coordinates follow OpenCV's INTER_LINEAR: sx = (x + 0.5) * W / w - 0.5, clamped to the image.
 * Arithmetic is float32 with weights computed in double, so every output is within a few
 * thousandths of a grey level of an exact (float64) resize.
 */
#include "kernels.h"
#include "dispatch.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if EL_X86_DISPATCH
#include <immintrin.h>
#endif

#define EL_MAX_SIDE (1 << 24) /* keeps every index product below 2^31 per row */

/* ------------------------------------------------------------------ loads and half floats -- */

static inline uint32_t load_le32(const uint8_t *p)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
#else
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
#endif
}

/* IEEE binary16 bits of `value`, rounded to nearest even (the portable path). */
static uint16_t half_from_float(float value)
{
    uint32_t x;
    memcpy(&x, &value, sizeof x);
    const uint32_t sign = (x >> 16) & 0x8000u;
    const uint32_t mag = x & 0x7fffffffu;
    if (mag >= 0x7f800000u) /* inf stays inf, NaN stays a quiet NaN */
        return (uint16_t)(sign | 0x7c00u | (mag > 0x7f800000u ? 0x0200u : 0u));
    if (mag >= 0x477ff000u) /* >= 65520 rounds to infinity */
        return (uint16_t)(sign | 0x7c00u);
    if (mag < 0x38800000u) { /* below 2^-14: a half subnormal (or zero) */
        const uint32_t exponent = mag >> 23;
        const uint32_t shift = 126u - exponent; /* value = mantissa * 2^-shift * 2^-24 */
        if (shift > 24u)
            return (uint16_t)sign;
        const uint32_t mantissa = (mag & 0x7fffffu) | 0x800000u;
        uint32_t q = mantissa >> shift;
        const uint32_t rest = mantissa & ((1u << shift) - 1u);
        const uint32_t halfway = 1u << (shift - 1u);
        if (rest > halfway || (rest == halfway && (q & 1u)))
            q++;
        return (uint16_t)(sign | q);
    }
    const uint32_t rounded = mag + 0x0fffu + ((mag >> 13) & 1u);
    return (uint16_t)(sign | ((rounded - 0x38000000u) >> 13));
}

#if EL_X86_DISPATCH
__attribute__((target("avx2,f16c"))) static void to_half_f16c(const float *restrict src,
                                                              uint16_t *restrict dst, int n)
{
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT);
        _mm_storeu_si128((__m128i *)(void *)(dst + i), h);
    }
    for (; i < n; i++)
        dst[i] = (uint16_t)_cvtss_sh(src[i], _MM_FROUND_TO_NEAREST_INT);
}
#endif

static void to_half(const float *restrict src, uint16_t *restrict dst, int n)
{
#if EL_X86_DISPATCH
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c")) {
        to_half_f16c(src, dst, n);
        return;
    }
#endif
#if defined(__FLT16_MAX__) && !defined(__x86_64__)
    for (int i = 0; i < n; i++) {
        const _Float16 h = (_Float16)src[i];
        memcpy(&dst[i], &h, sizeof h);
    }
#else
    for (int i = 0; i < n; i++)
        dst[i] = half_from_float(src[i]);
#endif
}

const char *el_vector_isa(void)
{
#if EL_X86_DISPATCH
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4"))
        return "x86-64-v4";
    if (__builtin_cpu_supports("x86-64-v3"))
        return "x86-64-v3";
    return "x86-64";
#elif defined(__aarch64__)
    return "aarch64";
#else
    return "generic";
#endif
}

/* ------------------------------------------------------------------- vectorised row loops -- */

EL_CLONES static void fill_f32(float *restrict p, ptrdiff_t n, float value)
{
    for (ptrdiff_t i = 0; i < n; i++)
        p[i] = value;
}

EL_CLONES static void fill_u16(uint16_t *restrict p, ptrdiff_t n, uint16_t value)
{
    for (ptrdiff_t i = 0; i < n; i++)
        p[i] = value;
}

/* A tap word holds the 6 bytes of an output column's two source pixels (left, right) in its low
 * 48 bits: channel k of the left pixel is byte k, of the right pixel byte k + 3. The low and the
 * middle 32 bits are taken apart first so that the vector loops work on 32-bit lanes. */
#define LEFT(lo, k) ((float)(((lo) >> (8 * (k))) & 0xffu))
#define RIGHT(mid, k) ((float)(((mid) >> (8 * (k) + 8)) & 0xffu))

/* One source row (the vertical weight of the other is zero). */
EL_CLONES static void lerp_row1(const uint64_t *restrict taps, const float *restrict fx, int n,
                                const float *restrict scale, const float *restrict bias,
                                float *restrict o0, float *restrict o1, float *restrict o2)
{
    const float s0 = scale[0], s1 = scale[1], s2 = scale[2];
    const float b0 = bias[0], b1 = bias[1], b2 = bias[2];
    for (int x = 0; x < n; x++) {
        const uint32_t a = (uint32_t)taps[x], b = (uint32_t)(taps[x] >> 16);
        const float f = fx[x];
        float l, r;
        l = LEFT(a, 0), r = RIGHT(b, 0);
        o0[x] = (l + f * (r - l)) * s0 + b0;
        l = LEFT(a, 1), r = RIGHT(b, 1);
        o1[x] = (l + f * (r - l)) * s1 + b1;
        l = LEFT(a, 2), r = RIGHT(b, 2);
        o2[x] = (l + f * (r - l)) * s2 + b2;
    }
}

/* Two source rows, blended with weight fy on the second. */
EL_CLONES static void lerp_row2(const uint64_t *restrict taps0, const uint64_t *restrict taps1,
                                const float *restrict fx, float fy, int n,
                                const float *restrict scale, const float *restrict bias,
                                float *restrict o0, float *restrict o1, float *restrict o2)
{
    const float s0 = scale[0], s1 = scale[1], s2 = scale[2];
    const float b0 = bias[0], b1 = bias[1], b2 = bias[2];
    for (int x = 0; x < n; x++) {
        const uint32_t a = (uint32_t)taps0[x], b = (uint32_t)(taps0[x] >> 16);
        const uint32_t c = (uint32_t)taps1[x], d = (uint32_t)(taps1[x] >> 16);
        const float f = fx[x];
        float l, r, top, bottom;
        l = LEFT(a, 0), r = RIGHT(b, 0), top = l + f * (r - l);
        l = LEFT(c, 0), r = RIGHT(d, 0), bottom = l + f * (r - l);
        o0[x] = (top + fy * (bottom - top)) * s0 + b0;
        l = LEFT(a, 1), r = RIGHT(b, 1), top = l + f * (r - l);
        l = LEFT(c, 1), r = RIGHT(d, 1), bottom = l + f * (r - l);
        o1[x] = (top + fy * (bottom - top)) * s1 + b1;
        l = LEFT(a, 2), r = RIGHT(b, 2), top = l + f * (r - l);
        l = LEFT(c, 2), r = RIGHT(d, 2), bottom = l + f * (r - l);
        o2[x] = (top + fy * (bottom - top)) * s2 + b2;
    }
}

#undef LEFT
#undef RIGHT

/* acc = weight * row (first tap of an area row) and acc += weight * row (the others). */
EL_CLONES static void row_scale(const uint8_t *restrict row, float weight, float *restrict acc,
                                int n)
{
    for (int i = 0; i < n; i++)
        acc[i] = weight * (float)row[i];
}

EL_CLONES static void row_axpy(const uint8_t *restrict row, float weight, float *restrict acc,
                               int n)
{
    for (int i = 0; i < n; i++)
        acc[i] += weight * (float)row[i];
}

/* The columns of an area row: output x sums acc[index[j][x] + c] * weight[j][x] over the taps j
 * (a dense taps x n table, zero weights padding short boxes). Tap-major, so the loop over x
 * carries no dependency from one multiply-add to the next. */
EL_CLONES static void area_columns(const float *restrict acc, const int32_t *restrict index,
                                   const float *restrict weight, int taps, int n,
                                   const float *restrict scale, const float *restrict bias,
                                   float *restrict o0, float *restrict o1, float *restrict o2)
{
    for (int x = 0; x < n; x++)
        o0[x] = o1[x] = o2[x] = 0.0f;
    for (int j = 0; j < taps; j++) {
        const int32_t *ix = index + (ptrdiff_t)j * n;
        const float *wx = weight + (ptrdiff_t)j * n;
        for (int x = 0; x < n; x++) {
            const float *a = acc + ix[x];
            o0[x] += wx[x] * a[0];
            o1[x] += wx[x] * a[1];
            o2[x] += wx[x] * a[2];
        }
    }
    for (int x = 0; x < n; x++) {
        o0[x] = o0[x] * scale[0] + bias[0];
        o1[x] = o1[x] * scale[1] + bias[1];
        o2[x] = o2[x] * scale[2] + bias[2];
    }
}

/* ----------------------------------------------------------------------------- the output -- */

/* Where the rows of the region go. Indexed by *input* channel k: f32[k] (or f16[k]) is the
 * output plane it is written to, scale[k]/bias[k] that plane's constants. float16 rows are
 * computed in float32 into `tmp` and converted as each is finished. */
typedef struct {
    float *f32[3];
    uint16_t *f16[3];
    float *tmp;
    ptrdiff_t row_stride; /* elements between output rows */
    int width;            /* region width */
    float scale[3];
    float bias[3];
} sink;

static float *sink_row(const sink *s, int k, int y)
{
    return s->tmp ? s->tmp + (ptrdiff_t)k * s->width : s->f32[k] + (ptrdiff_t)y * s->row_stride;
}

static void sink_done(const sink *s, int y)
{
    if (!s->tmp)
        return;
    for (int k = 0; k < 3; k++)
        to_half(s->tmp + (ptrdiff_t)k * s->width, s->f16[k] + (ptrdiff_t)y * s->row_stride,
                s->width);
}

/* ---------------------------------------------------------------------------- bilinear ----- */

/* Source index and weight of the next index for output coordinate d (OpenCV's centres). */
static void linear_tap(int src_len, int dst_len, int d, int *index, float *frac)
{
    const double s = ((double)d + 0.5) * (double)src_len / (double)dst_len - 0.5;
    const double fl = floor(s);
    int i = (int)fl;
    double f = s - fl;
    if (i < 0) {
        i = 0;
        f = 0.0;
    }
    if (i >= src_len - 1) {
        i = src_len - 1;
        f = 0.0;
    }
    *index = i;
    *frac = (float)f;
}

typedef struct {
    int row; /* source row held, -1 for none */
    uint64_t *taps;
} row_slot;

typedef struct {
    const el_image *src;
    const int32_t *offset; /* byte offset of each output column's left pixel */
    int width;             /* output columns */
    int wide;              /* columns [0, wide) may load 8 bytes; the rest stop at the row end */
    row_slot slot[2];
} tap_rows;

/* The 6 tap bytes at p, without reading past p + 6. */
static inline uint64_t load_taps_tail(const uint8_t *p)
{
    return (uint64_t)load_le32(p) | (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40;
}

static inline uint64_t load_taps(const uint8_t *p)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
#else
    return load_taps_tail(p);
#endif
}

/* Fill the tap words of one or two source rows (row1 < 0: one). Deliberately plain scalar
 * loads: an AVX-512 gather is no faster, and gathers are several times slower on CPUs with the
 * GDS ("Downfall") microcode fix (docs/decisions/0021-kernel-preference-order.md). Both rows
 * share one pass over the offsets. */
static void fetch_taps(const tap_rows *t, int row0, uint64_t *restrict taps0, int row1,
                       uint64_t *restrict taps1)
{
    const el_image *src = t->src;
    const int32_t *offset = t->offset;
    const uint8_t *p0 = src->data + (ptrdiff_t)row0 * src->stride;
    const uint8_t *p1 = src->data + (ptrdiff_t)(row1 < 0 ? row0 : row1) * src->stride;
    if (src->width == 1) { /* both taps are the one pixel, and only its 3 bytes are readable */
        const uint64_t q0 = p0[0] | (uint64_t)p0[1] << 8 | (uint64_t)p0[2] << 16;
        const uint64_t q1 = p1[0] | (uint64_t)p1[1] << 8 | (uint64_t)p1[2] << 16;
        for (int x = 0; x < t->width; x++) {
            taps0[x] = q0 | q0 << 24;
            if (row1 >= 0)
                taps1[x] = q1 | q1 << 24;
        }
        return;
    }
    int x = 0;
    if (row1 < 0) {
        for (; x < t->wide; x++)
            taps0[x] = load_taps(p0 + offset[x]);
        for (; x < t->width; x++)
            taps0[x] = load_taps_tail(p0 + offset[x]);
    } else {
        for (; x < t->wide; x++) {
            taps0[x] = load_taps(p0 + offset[x]);
            taps1[x] = load_taps(p1 + offset[x]);
        }
        for (; x < t->width; x++) {
            taps0[x] = load_taps_tail(p0 + offset[x]);
            taps1[x] = load_taps_tail(p1 + offset[x]);
        }
    }
}

static row_slot *find_slot(tap_rows *t, int row)
{
    for (int i = 0; i < 2; i++)
        if (t->slot[i].row == row)
            return &t->slot[i];
    return NULL;
}

/* The slots holding source rows row0 (and row1 unless < 0), fetching what no slot holds yet and
 * never evicting the other row asked for: an upscale fetches each source row once. */
static void fetch_rows(tap_rows *t, int row0, int row1, const row_slot **s0, const row_slot **s1)
{
    row_slot *a = find_slot(t, row0);
    row_slot *b = row1 < 0 ? NULL : find_slot(t, row1);
    if (!a && row1 >= 0 && !b) {
        a = &t->slot[0];
        b = &t->slot[1];
        fetch_taps(t, row0, a->taps, row1, b->taps);
        a->row = row0;
        b->row = row1;
    } else if (!a || (row1 >= 0 && !b)) {
        const int row = a ? row1 : row0;
        row_slot *held = a ? a : b;
        row_slot *s = held == &t->slot[0] ? &t->slot[1] : &t->slot[0];
        fetch_taps(t, row, s->taps, -1, NULL);
        s->row = row;
        if (a)
            b = s;
        else
            a = s;
    }
    *s0 = a;
    *s1 = b;
}

static int resize_bilinear(const el_image *src, const el_region *rg, const sink *out)
{
    const int w = rg->width, h = rg->height, W = src->width, H = src->height;
    const size_t n = (size_t)w;
    char *mem = malloc(n * (2 * sizeof(uint64_t) + sizeof(int32_t) + sizeof(float)));
    if (!mem)
        return EL_ENOMEM;
    uint64_t *taps = (uint64_t *)(void *)mem;
    int32_t *offset = (int32_t *)(void *)(taps + 2 * n);
    float *fx = (float *)(void *)(offset + n);
    tap_rows t = {src, offset, w, 0, {{-1, taps}, {-1, taps + n}}};
    for (int x = 0; x < w; x++) {
        int i;
        linear_tap(W, w, x, &i, &fx[x]);
        if (W >= 2 && i == W - 1) { /* right edge: pair (W-2, W-1) with all weight on W-1 */
            i = W - 2;
            fx[x] = 1.0f;
        }
        offset[x] = 3 * (W >= 2 ? i : 0);
        if (offset[x] + 8 <= 3 * W) /* offsets never decrease: a prefix of the columns */
            t.wide = x + 1;
    }
    for (int y = 0; y < h; y++) {
        int i;
        float fy;
        linear_tap(H, h, y, &i, &fy);
        float *o0 = sink_row(out, 0, y), *o1 = sink_row(out, 1, y), *o2 = sink_row(out, 2, y);
        const row_slot *a, *b;
        if (fy == 0.0f) {
            fetch_rows(&t, i, -1, &a, &b);
            lerp_row1(a->taps, fx, w, out->scale, out->bias, o0, o1, o2);
        } else {
            fetch_rows(&t, i, i + 1, &a, &b);
            lerp_row2(a->taps, b->taps, fx, fy, w, out->scale, out->bias, o0, o1, o2);
        }
        sink_done(out, y);
    }
    free(mem);
    return EL_OK;
}

/* -------------------------------------------------------------------------------- area ----- */

/* Box-filter taps of one axis: output d covers source [d*S/D, (d+1)*S/D); each source pixel
 * weighs its overlap with that interval, normalised to sum to one. `weight` holds
 * src_len + 2 * dst_len entries at most. */
static void area_taps(int src_len, int dst_len, int32_t *start, int32_t *count, float *weight)
{
    const double norm = (double)dst_len / (double)src_len;
    size_t k = 0;
    for (int d = 0; d < dst_len; d++) {
        const double a = (double)d * src_len / dst_len, b = (double)(d + 1) * src_len / dst_len;
        const int i0 = (int)floor(a);
        int i1 = (int)ceil(b);
        if (i1 > src_len)
            i1 = src_len;
        start[d] = i0;
        count[d] = i1 - i0;
        for (int i = i0; i < i1; i++)
            weight[k++] = (float)((fmin(b, i + 1.0) - fmax(a, (double)i)) * norm);
    }
}

static int resize_area(const el_image *src, const el_region *rg, const sink *out)
{
    const int w = rg->width, h = rg->height, W = src->width, H = src->height;
    const size_t ints = 2 * ((size_t)w + (size_t)h);
    const size_t floats = ((size_t)W + 2 * (size_t)w) + ((size_t)H + 2 * (size_t)h) + 3 * (size_t)W;
    char *mem = malloc(ints * sizeof(int32_t) + floats * sizeof(float));
    if (!mem)
        return EL_ENOMEM;
    int32_t *xstart = (int32_t *)(void *)mem, *xcount = xstart + w;
    int32_t *ystart = xcount + w, *ycount = ystart + h;
    float *xweight = (float *)(void *)(ycount + h);
    float *yweight = xweight + W + 2 * (size_t)w;
    float *acc = yweight + H + 2 * (size_t)h;
    area_taps(W, w, xstart, xcount, xweight);
    area_taps(H, h, ystart, ycount, yweight);

    /* The column taps as a dense taps x w table (see area_columns). */
    int taps = 1;
    for (int x = 0; x < w; x++)
        taps = xcount[x] > taps ? xcount[x] : taps;
    char *table = malloc((size_t)taps * (size_t)w * (sizeof(int32_t) + sizeof(float)));
    if (!table) {
        free(mem);
        return EL_ENOMEM;
    }
    int32_t *index = (int32_t *)(void *)table;
    float *weight = (float *)(void *)(index + (size_t)taps * (size_t)w);
    const float *wx = xweight;
    for (int x = 0; x < w; x++) {
        for (int j = 0; j < taps; j++) {
            const int inside = j < xcount[x];
            index[(ptrdiff_t)j * w + x] = 3 * (xstart[x] + (inside ? j : 0));
            weight[(ptrdiff_t)j * w + x] = inside ? wx[j] : 0.0f;
        }
        wx += xcount[x];
    }

    const float *wy = yweight;
    for (int y = 0; y < h; y++) {
        const uint8_t *row = src->data + (ptrdiff_t)ystart[y] * src->stride;
        row_scale(row, wy[0], acc, 3 * W);
        for (int j = 1; j < ycount[y]; j++)
            row_axpy(row + (ptrdiff_t)j * src->stride, wy[j], acc, 3 * W);
        wy += ycount[y];
        area_columns(acc, index, weight, taps, w, out->scale, out->bias, sink_row(out, 0, y),
                     sink_row(out, 1, y), sink_row(out, 2, y));
        sink_done(out, y);
    }
    free(table);
    free(mem);
    return EL_OK;
}

/* ------------------------------------------------------------------------ entry point ----- */

static void fill_rect(void *plane, int is_half, ptrdiff_t offset, ptrdiff_t n, float value,
                      uint16_t value16)
{
    if (n <= 0)
        return;
    if (is_half)
        fill_u16((uint16_t *)plane + offset, n, value16);
    else
        fill_f32((float *)plane + offset, n, value);
}

/* Everything of each plane outside the region: the rows above and below in one run each, then
 * the left and right margins of the region's rows. */
static void fill_padding(void *const planes[3], int is_half, int dst_height, int dst_width,
                         const el_region *rg, const float *pad)
{
    const ptrdiff_t W = dst_width;
    const int right = dst_width - rg->x0 - rg->width;
    for (int p = 0; p < 3; p++) {
        const uint16_t pad16 = is_half ? half_from_float(pad[p]) : 0;
        fill_rect(planes[p], is_half, 0, rg->y0 * W, pad[p], pad16);
        const int below = rg->y0 + rg->height;
        fill_rect(planes[p], is_half, below * W, (dst_height - below) * W, pad[p], pad16);
        if (rg->x0 == 0 && right == 0)
            continue;
        for (int y = rg->y0; y < below; y++) {
            fill_rect(planes[p], is_half, y * W, rg->x0, pad[p], pad16);
            fill_rect(planes[p], is_half, y * W + rg->x0 + rg->width, right, pad[p], pad16);
        }
    }
}

int el_preprocess(const el_image *src, void *dst, int dst_type, int dst_height, int dst_width,
                  el_region region, const float *scale, const float *bias, const float *pad,
                  int swap_rb, int interpolation)
{
    if (!src || !src->data || !dst || !scale || !bias || !pad)
        return EL_EINVAL;
    if (src->height < 1 || src->width < 1 || src->height > EL_MAX_SIDE ||
        src->width > EL_MAX_SIDE || src->stride < 3 * (ptrdiff_t)src->width)
        return EL_EINVAL;
    if (dst_height < 1 || dst_width < 1 || dst_height > EL_MAX_SIDE || dst_width > EL_MAX_SIDE)
        return EL_EINVAL;
    if (region.x0 < 0 || region.y0 < 0 || region.width < 1 || region.height < 1 ||
        region.width > dst_width - region.x0 || region.height > dst_height - region.y0)
        return EL_EINVAL;
    if ((dst_type != EL_FLOAT32 && dst_type != EL_FLOAT16) ||
        (interpolation != EL_BILINEAR && interpolation != EL_AREA))
        return EL_EINVAL;

    const int is_half = dst_type == EL_FLOAT16;
    const size_t elem = is_half ? sizeof(uint16_t) : sizeof(float);
    const ptrdiff_t plane_len = (ptrdiff_t)dst_height * dst_width;
    void *planes[3];
    for (int p = 0; p < 3; p++)
        planes[p] = (char *)dst + (size_t)p * (size_t)plane_len * elem;
    fill_padding(planes, is_half, dst_height, dst_width, &region, pad);

    sink out = {.tmp = NULL, .row_stride = dst_width, .width = region.width};
    const ptrdiff_t first = (ptrdiff_t)region.y0 * dst_width + region.x0;
    for (int k = 0; k < 3; k++) {
        const int p = swap_rb ? 2 - k : k;
        out.f32[k] = is_half ? NULL : (float *)planes[p] + first;
        out.f16[k] = is_half ? (uint16_t *)planes[p] + first : NULL;
        out.scale[k] = scale[p];
        out.bias[k] = bias[p];
    }
    if (is_half) {
        out.tmp = malloc(3 * (size_t)region.width * sizeof(float));
        if (!out.tmp)
            return EL_ENOMEM;
    }
    const int rc = interpolation == EL_AREA ? resize_area(src, &region, &out)
                                            : resize_bilinear(src, &region, &out);
    free(out.tmp);
    return rc;
}
