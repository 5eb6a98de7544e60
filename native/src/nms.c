/* Greedy, class-aware non-maximum suppression on float32 xyxy boxes.
 *
 * Candidates (finite box and score, score >= score_threshold) are sorted by score, descending,
 * ties by lower index, with a radix sort of packed 64-bit keys (linear; qsort's indirect
 * comparisons were most of the time on 8400 YOLO boxes). Each candidate is then compared with
 * the boxes kept so far of its class and kept unless one overlaps it by IoU > iou_threshold;
 * the loop stops at top_k.
 *
 * IoU is computed in double from the float32 coordinates, in exactly this order, so that every
 * implementation (and the NumPy reference) makes the same decision at the threshold:
 *   area  = max(0, x2 - x1) * max(0, y2 - y1)        (degenerate boxes have zero area)
 *   inter = max(0, min(x2) - max(x1)) * max(0, min(y2) - max(y1))
 *   iou   = inter / ((area_a + area_b) - inter), or 0 when that union is not positive.
 * Contracting those into fused multiply-adds would change the last bit, so it is switched off.
 */
#include "kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

/* Sort key of a candidate: descending score in the high 32 bits (the float's bits made
 * order-preserving, then inverted), ascending index in the low 32. Ascending keys are the
 * contract's order; -0.0 is keyed as +0.0 because the two compare equal. */
static uint64_t candidate_key(float score, uint32_t index)
{
    uint32_t bits;
    if (score == 0.0f)
        score = 0.0f;
    memcpy(&bits, &score, sizeof bits);
    const uint32_t ordered = bits & 0x80000000u ? ~bits : bits | 0x80000000u;
    return (uint64_t)~ordered << 32 | index;
}

/* LSD radix sort, one byte per pass, skipping bytes that every key shares (the high index bytes
 * of all but huge inputs): a few linear passes instead of qsort's n log n indirect calls. */
static void sort_keys(uint64_t *keys, uint64_t *spare, size_t n)
{
    uint64_t *from = keys, *to = spare;
    for (int shift = 0; shift < 64 && n > 1; shift += 8) {
        size_t count[256] = {0};
        for (size_t i = 0; i < n; i++)
            count[(from[i] >> shift) & 0xffu]++;
        if (count[(from[0] >> shift) & 0xffu] == n)
            continue;
        size_t at = 0;
        for (int d = 0; d < 256; d++) {
            const size_t c = count[d];
            count[d] = at;
            at += c;
        }
        for (size_t i = 0; i < n; i++)
            to[count[(from[i] >> shift) & 0xffu]++] = from[i];
        uint64_t *t = from;
        from = to;
        to = t;
    }
    if (from != keys)
        memcpy(keys, from, n * sizeof *keys);
}

typedef struct {
    double x1, y1, x2, y2, area;
    int64_t cls;
} kept_box;

static double box_area(double x1, double y1, double x2, double y2)
{
    return fmax(0.0, x2 - x1) * fmax(0.0, y2 - y1);
}

static int suppressed(const kept_box *kept, ptrdiff_t nkept, const kept_box *b, double threshold)
{
    for (ptrdiff_t j = 0; j < nkept; j++) {
        const kept_box *k = &kept[j];
        if (k->cls != b->cls)
            continue;
        const double iw = fmin(k->x2, b->x2) - fmax(k->x1, b->x1);
        const double ih = fmin(k->y2, b->y2) - fmax(k->y1, b->y1);
        if (iw <= 0.0 || ih <= 0.0)
            continue;
        const double inter = iw * ih;
        const double uni = (k->area + b->area) - inter;
        if (uni > 0.0 && inter / uni > threshold)
            return 1;
    }
    return 0;
}

ptrdiff_t el_nms(const float *boxes, const float *scores, const int64_t *classes, ptrdiff_t n,
                 double iou_threshold, double score_threshold, ptrdiff_t top_k, int64_t *keep)
{
    if (n < 0 || n > INT32_MAX || top_k < 0 || (n > 0 && (!boxes || !scores || !keep)))
        return EL_EINVAL;
    if (n == 0 || top_k == 0)
        return 0;
    uint64_t *keys = malloc(2 * (size_t)n * sizeof *keys);
    if (!keys)
        return EL_ENOMEM;
    size_t m = 0;
    for (ptrdiff_t i = 0; i < n; i++) {
        const float s = scores[i];
        const float *b = boxes + 4 * i;
        if (!((double)s >= score_threshold) || !isfinite(s) || !isfinite(b[0]) ||
            !isfinite(b[1]) || !isfinite(b[2]) || !isfinite(b[3]))
            continue;
        keys[m++] = candidate_key(s, (uint32_t)i);
    }
    sort_keys(keys, keys + n, m);

    const ptrdiff_t cap = (ptrdiff_t)m < top_k ? (ptrdiff_t)m : top_k;
    kept_box *kept = malloc((size_t)(cap > 0 ? cap : 1) * sizeof *kept);
    if (!kept) {
        free(keys);
        return EL_ENOMEM;
    }
    ptrdiff_t nkept = 0;
    for (size_t c = 0; c < m && nkept < cap; c++) {
        const ptrdiff_t i = (ptrdiff_t)(uint32_t)keys[c];
        const float *p = boxes + 4 * i;
        kept_box b = {p[0], p[1], p[2], p[3], 0.0, classes ? classes[i] : 0};
        b.area = box_area(b.x1, b.y1, b.x2, b.y2);
        if (suppressed(kept, nkept, &b, iou_threshold))
            continue;
        kept[nkept] = b;
        keep[nkept] = i;
        nkept++;
    }
    free(kept);
    free(keys);
    return nkept;
}
