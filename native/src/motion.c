/* Motion score: a downsampled colour frame, and the cells that changed between two of them.
 *
 * Integer only, so every implementation gives the same bits. A cell is the floor of the mean
 * of each channel over a factor x factor block, in the input's channel order; it changed when
 * any channel moved by more than the threshold. Per channel rather than one grey level: a grey
 * projection is blind to a change along its null space -- a red object over green foliage of
 * the same brightness -- and so is any single weighted sum. Rows and columns beyond the last
 * whole block are ignored.
 */
#include "kernels.h"
#include "dispatch.h"

#include <stdlib.h>
#include <string.h>

/* One row's bytes added to the per-byte column sums of the block row being built (16-bit
 * lanes: a sum is at most 256 * 255). Pointer-stepped with a ptrdiff_t counter so that the
 * vectoriser still sees affine accesses under -fwrapv (which CPython's build flags add). */
EL_CLONES static void add_row(const uint8_t *restrict row, ptrdiff_t n, uint16_t *restrict colsum)
{
    for (ptrdiff_t x = 0; x < n; x++)
        colsum[x] = (uint16_t)(colsum[x] + row[x]);
}

int el_motion_cells(const el_image *src, int factor, uint8_t *out)
{
    if (!src || !src->data || !out || factor < 1 || factor > EL_MAX_MOTION_FACTOR ||
        src->height < 0 || src->width < 0 || src->stride < 3 * (ptrdiff_t)src->width)
        return EL_EINVAL;
    const int gh = src->height / factor, gw = src->width / factor;
    if (gh == 0 || gw == 0)
        return EL_OK;
    const ptrdiff_t n = (ptrdiff_t)gw * factor * 3; /* bytes of a row inside whole blocks */
    uint16_t *colsum = malloc((size_t)n * sizeof *colsum);
    if (!colsum)
        return EL_ENOMEM;
    const uint32_t cells = (uint32_t)factor * (uint32_t)factor;
    for (int gy = 0; gy < gh; gy++) {
        memset(colsum, 0, (size_t)n * sizeof *colsum);
        for (int r = 0; r < factor; r++)
            add_row(src->data + ((ptrdiff_t)gy * factor + r) * src->stride, n, colsum);
        uint8_t *o = out + (ptrdiff_t)gy * gw * 3;
        for (int gx = 0; gx < gw; gx++) {
            uint32_t s0 = 0, s1 = 0, s2 = 0;
            const uint16_t *c = colsum + (ptrdiff_t)gx * factor * 3;
            for (int i = 0; i < factor; i++, c += 3) {
                s0 += c[0];
                s1 += c[1];
                s2 += c[2];
            }
            o[3 * gx] = (uint8_t)(s0 / cells);
            o[3 * gx + 1] = (uint8_t)(s1 / cells);
            o[3 * gx + 2] = (uint8_t)(s2 / cells);
        }
    }
    free(colsum);
    return EL_OK;
}

/* Per byte of one row, 1 where it moved by more than threshold (vectorised: contiguous). */
EL_CLONES static void moved_bytes(const uint8_t *restrict prev, const uint8_t *restrict cur,
                                  ptrdiff_t n, int threshold, uint8_t *restrict moved)
{
    for (ptrdiff_t i = 0; i < n; i++) {
        const int d = (int)cur[i] - (int)prev[i];
        moved[i] = (uint8_t)((d > threshold) | (-d > threshold));
    }
}

/* Per cell of one row, 1 where any of its `channels` bytes moved (in place: flags[x] from
 * moved[x * channels ...], never ahead of what it reads); returns how many. */
static int changed_cells(uint8_t *flags, int width, int channels)
{
    int count = 0;
    if (channels == 3) { /* the colour grid: unrolled */
        for (int x = 0; x < width; x++) {
            const uint8_t m = flags[3 * x] | flags[3 * x + 1] | flags[3 * x + 2];
            flags[x] = m;
            count += m;
        }
        return count;
    }
    for (int x = 0; x < width; x++) {
        uint8_t m = 0;
        for (int k = 0; k < channels; k++)
            m |= flags[x * channels + k];
        flags[x] = m;
        count += m;
    }
    return count;
}

int64_t el_motion_diff(const uint8_t *prev, const uint8_t *cur, int height, int width,
                       int channels, int threshold, int box[4])
{
    if (!box || height < 0 || width < 0 || channels < 1 ||
        ((height > 0 && width > 0) && (!prev || !cur)))
        return EL_EINVAL;
    int64_t total = 0;
    int x0 = width, y0 = height, x1 = 0, y1 = 0;
    const ptrdiff_t row_bytes = (ptrdiff_t)width * channels;
    uint8_t *flags = malloc(row_bytes > 0 ? (size_t)row_bytes : 1u);
    if (!flags)
        return EL_ENOMEM;
    for (int y = 0; y < height; y++) {
        moved_bytes(prev + y * row_bytes, cur + y * row_bytes, row_bytes, threshold, flags);
        const int count = changed_cells(flags, width, channels);
        if (count == 0)
            continue;
        total += count;
        if (y0 == height)
            y0 = y;
        y1 = y + 1;
        int first = 0, last = width - 1;
        while (!flags[first])
            first++;
        while (!flags[last])
            last--;
        if (first < x0)
            x0 = first;
        if (last + 1 > x1)
            x1 = last + 1;
    }
    free(flags);
    if (total == 0)
        x0 = y0 = 0;
    box[0] = x0;
    box[1] = y0;
    box[2] = x1;
    box[3] = y1;
    return total;
}
