/* edgeloop's pixel kernels, NMS and motion score: plain C11, no Python API.
 *
 * The contract these functions implement is written once, in native/kernels.py. The Python
 * wrappers validate every argument first and give the user a message that names the fix; these
 * functions re-check cheaply and return EL_EINVAL instead of touching memory out of range.
 * None of them keeps state between calls or takes a lock, so they are safe to call from several
 * threads at once (the Cython layer calls them without the GIL).
 */
#ifndef EDGELOOP_KERNELS_H
#define EDGELOOP_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum { EL_OK = 0, EL_EINVAL = -1, EL_ENOMEM = -2 };
enum { EL_BILINEAR = 0, EL_AREA = 1 };
enum { EL_FLOAT32 = 0, EL_FLOAT16 = 1 };

/* An HxWx3 uint8 image: the three channels of a pixel are adjacent, pixels of a row are adjacent,
 * rows are `stride` bytes apart (a crop of a bigger frame keeps the bigger frame's stride). */
typedef struct {
    const uint8_t *data;
    ptrdiff_t stride;
    int height;
    int width;
} el_image;

/* Where in the output planes the resized image goes; everything else is padding. */
typedef struct {
    int x0;
    int y0;
    int width;
    int height;
} el_region;

/* Resize `src` into `region` of three planes of dst_height x dst_width (float32, or IEEE half
 * stored as uint16 when dst_type is EL_FLOAT16), out = pixel * scale[c] + bias[c], and fill the
 * rest of each plane with pad[c]. scale/bias/pad are in output plane order; with swap_rb, plane 0
 * reads input channel 2. Returns EL_OK, EL_EINVAL or EL_ENOMEM. */
int el_preprocess(const el_image *src, void *dst, int dst_type, int dst_height, int dst_width,
                  el_region region, const float *scale, const float *bias, const float *pad,
                  int swap_rb, int interpolation);

/* Which vector code path el_preprocess takes on this CPU: "x86-64-v4", "x86-64-v3" or "generic". */
const char *el_vector_isa(void);

/* Greedy class-aware NMS over n float32 xyxy boxes (n x 4, C order). classes may be NULL
 * (one class). Writes kept indices to keep (capacity >= min(n, top_k)) by descending score, ties
 * by lower index. Returns the count kept, or EL_EINVAL / EL_ENOMEM. */
ptrdiff_t el_nms(const float *boxes, const float *scores, const int64_t *classes, ptrdiff_t n,
                 double iou_threshold, double score_threshold, ptrdiff_t top_k, int64_t *keep);

/* Block mean of each of the 3 channels over factor x factor blocks (1 <= factor <=
 * EL_MAX_MOTION_FACTOR) into out ((H/factor) x (W/factor) x 3, C order, the input's channel
 * order). Returns EL_OK, EL_EINVAL or EL_ENOMEM. */
#define EL_MAX_MOTION_FACTOR 256
int el_motion_cells(const el_image *src, int factor, uint8_t *out);

/* Count of cells where any of the `channels` values moved by more than threshold, in two
 * height x width x channels uint8 grids (C order), and their half-open bounding box (x0, y0,
 * x1, y1), all zero when nothing changed. Returns the count, EL_EINVAL or EL_ENOMEM. */
int64_t el_motion_diff(const uint8_t *prev, const uint8_t *cur, int height, int width,
                       int channels, int threshold, int box[4]);

/* out = (base + level + noise) mod 256, byte by byte, over three HxWx3 images of base's size
 * (rows `stride` / `out_stride` bytes apart; out must not overlap base or noise: restrict).
 * Returns EL_OK or EL_EINVAL. */
int el_add_wrapped(const el_image *base, uint8_t level, const el_image *noise, uint8_t *out,
                   ptrdiff_t out_stride);

/* out = (colour + noise) mod 256 on the pixels whose mask byte is non-zero; out and noise are
 * HxWx3 images of noise's size (out rows `out_stride` bytes apart), mask HxW (rows `mask_stride`
 * bytes apart). Returns EL_OK or EL_EINVAL. */
int el_paint_wrapped(uint8_t *out, ptrdiff_t out_stride, const el_image *noise,
                     const uint8_t *mask, ptrdiff_t mask_stride, const uint8_t colour[3]);

#ifdef __cplusplus
}
#endif

#endif /* EDGELOOP_KERNELS_H */
