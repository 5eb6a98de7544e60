/* Motion score: a downsampled grey frame, and the cells that changed between two of them.
 *
 * Integer only, so every implementation gives the same bits. Grey is BT.601 in 8-bit fixed
 * point, (77 R + 150 G + 29 B + 128) >> 8; a cell is the floor of the mean grey of a
 * factor x factor block. Rows and columns beyond the last whole block are ignored.
 */
#include "kernels.h"
#include "dispatch.h"

#include <stdlib.h>
#include <string.h>

/* Grey of one row, added to the per-column sums of the block row being built. 16-bit lanes: a
 * weighted sum is at most 255 * 256 + 128 and a column sum at most 256 * 255. Pointer-stepped
 * with a ptrdiff_t counter so that the vectoriser still sees affine accesses under -fwrapv
 * (which CPython's build flags add). */
EL_CLONES static void add_grey_row(const uint8_t *restrict row, ptrdiff_t n, uint16_t w0,
                                   uint16_t w2, uint16_t *restrict colsum)
{
    for (ptrdiff_t x = 0; x < n; x++, row += 3) {
        const uint16_t sum = (uint16_t)((uint16_t)(w0 * row[0]) + (uint16_t)(150u * row[1]) +
                                        (uint16_t)(w2 * row[2]) + (uint16_t)128u);
        colsum[x] = (uint16_t)(colsum[x] + (uint16_t)(sum >> 8));
    }
}

int el_motion_gray(const el_image *src, int factor, int swap_rb, uint8_t *out)
{
    if (!src || !src->data || !out || factor < 1 || factor > EL_MAX_MOTION_FACTOR ||
        src->height < 0 || src->width < 0 || src->stride < 3 * (ptrdiff_t)src->width)
        return EL_EINVAL;
    const int gh = src->height / factor, gw = src->width / factor;
    if (gh == 0 || gw == 0)
        return EL_OK;
    const ptrdiff_t n = (ptrdiff_t)gw * factor;
    uint16_t *colsum = malloc((size_t)n * sizeof *colsum);
    if (!colsum)
        return EL_ENOMEM;
    const uint16_t w0 = swap_rb ? 77u : 29u, w2 = swap_rb ? 29u : 77u; /* BGR in by default */
    const uint32_t cells = (uint32_t)factor * (uint32_t)factor;
    for (int gy = 0; gy < gh; gy++) {
        memset(colsum, 0, (size_t)n * sizeof *colsum);
        for (int r = 0; r < factor; r++) {
            const uint8_t *row = src->data + ((ptrdiff_t)gy * factor + r) * src->stride;
            add_grey_row(row, n, w0, w2, colsum);
        }
        uint8_t *o = out + (ptrdiff_t)gy * gw;
        for (int gx = 0; gx < gw; gx++) {
            uint32_t s = 0;
            const uint16_t *c = colsum + (ptrdiff_t)gx * factor;
            for (int i = 0; i < factor; i++)
                s += c[i];
            o[gx] = (uint8_t)(s / cells);
        }
    }
    free(colsum);
    return EL_OK;
}

/* Count of |cur - prev| > threshold in one row (vectorised; the bounding box is found only in
 * rows that have any). */
EL_CLONES static int count_changed(const uint8_t *restrict prev, const uint8_t *restrict cur,
                                   int n, int threshold)
{
    int count = 0;
    for (int x = 0; x < n; x++) {
        const int d = (int)cur[x] - (int)prev[x];
        count += (d > threshold) | (-d > threshold);
    }
    return count;
}

int64_t el_motion_diff(const uint8_t *prev, const uint8_t *cur, int height, int width,
                       int threshold, int box[4])
{
    if (!box || height < 0 || width < 0 || ((height > 0 && width > 0) && (!prev || !cur)))
        return EL_EINVAL;
    int64_t total = 0;
    int x0 = width, y0 = height, x1 = 0, y1 = 0;
    for (int y = 0; y < height; y++) {
        const uint8_t *p = prev + (ptrdiff_t)y * width, *c = cur + (ptrdiff_t)y * width;
        const int count = count_changed(p, c, width, threshold);
        if (count == 0)
            continue;
        total += count;
        if (y0 == height)
            y0 = y;
        y1 = y + 1;
        int first = 0, last = width - 1;
        while (abs((int)c[first] - (int)p[first]) <= threshold)
            first++;
        while (abs((int)c[last] - (int)p[last]) <= threshold)
            last--;
        if (first < x0)
            x0 = first;
        if (last + 1 > x1)
            x1 = last + 1;
    }
    if (total == 0)
        x0 = y0 = 0;
    box[0] = x0;
    box[1] = y0;
    box[2] = x1;
    box[3] = y1;
    return total;
}
