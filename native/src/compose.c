/* The synthetic camera's two pixel passes, both wrapping 8-bit adds.
 *
 * el_add_wrapped: out = (base + level + noise) mod 256, byte by byte, over three HxWx3 images
 * that may each have padded rows (out is a ring slot, noise a window into a bigger noise field):
 * background, brightness and sensor noise in one pass instead of NumPy's two.
 * el_paint_wrapped: out = (colour + noise) mod 256 on the pixels of a mask -- an object seen
 * through the same noise. NumPy's masked copy of a broadcast colour walks 3 bytes per inner
 * loop; this is a plain row loop (docs/decisions/0018-synthetic-camera-native-passes.md).
 * Both run without the GIL: the camera thread of a paced pipeline spends most of a frame here,
 * and holding the GIL for it delayed every other thread's wake-up.
 */
#include "kernels.h"
#include "dispatch.h"

EL_CLONES static void add_row(const uint8_t *restrict base, const uint8_t *restrict noise,
                              uint8_t *restrict out, ptrdiff_t n, uint8_t level)
{
    for (ptrdiff_t i = 0; i < n; i++)
        out[i] = (uint8_t)(base[i] + level + noise[i]);
}

int el_add_wrapped(const el_image *base, uint8_t level, const el_image *noise, uint8_t *out,
                   ptrdiff_t out_stride)
{
    if (!base || !noise || !out || !base->data || !noise->data || base->height < 0 ||
        base->width < 0 || noise->height != base->height || noise->width != base->width ||
        base->stride < 3 * (ptrdiff_t)base->width || noise->stride < 3 * (ptrdiff_t)base->width ||
        out_stride < 3 * (ptrdiff_t)base->width)
        return EL_EINVAL;
    const ptrdiff_t n = 3 * (ptrdiff_t)base->width;
    for (int y = 0; y < base->height; y++)
        add_row(base->data + y * base->stride, noise->data + y * noise->stride,
                out + y * out_stride, n, level);
    return EL_OK;
}

int el_paint_wrapped(uint8_t *out, ptrdiff_t out_stride, const el_image *noise,
                     const uint8_t *mask, ptrdiff_t mask_stride, const uint8_t colour[3])
{
    if (!out || !noise || !noise->data || !mask || !colour || noise->height < 0 ||
        noise->width < 0 || noise->stride < 3 * (ptrdiff_t)noise->width ||
        out_stride < 3 * (ptrdiff_t)noise->width || mask_stride < (ptrdiff_t)noise->width)
        return EL_EINVAL;
    const uint8_t c0 = colour[0], c1 = colour[1], c2 = colour[2];
    for (int y = 0; y < noise->height; y++) {
        const uint8_t *m = mask + y * mask_stride;
        const uint8_t *z = noise->data + y * noise->stride;
        uint8_t *o = out + y * out_stride;
        for (int x = 0; x < noise->width; x++, z += 3, o += 3) {
            if (m[x]) {
                o[0] = (uint8_t)(c0 + z[0]);
                o[1] = (uint8_t)(c1 + z[1]);
                o[2] = (uint8_t)(c2 + z[2]);
            }
        }
    }
    return EL_OK;
}
