# C declarations of native/src/kernels.h, written once (PyAV's include/*.pxd style).
# native/_kernels.pyx cimports this as ``lib``, so every C call reads ``lib.el_...``.
from libc.stdint cimport int64_t, uint8_t


cdef extern from "kernels.h" nogil:
    enum:
        EL_OK
        EL_EINVAL
        EL_ENOMEM
        EL_BILINEAR
        EL_AREA
        EL_FLOAT32
        EL_FLOAT16
        EL_MAX_MOTION_FACTOR

    ctypedef struct el_image:
        const uint8_t *data
        Py_ssize_t stride
        int height
        int width

    ctypedef struct el_region:
        int x0
        int y0
        int width
        int height

    int el_preprocess(const el_image *src, void *dst, int dst_type, int dst_height,
                      int dst_width, el_region region, const float *scale, const float *bias,
                      const float *pad, int swap_rb, int interpolation)
    const char *el_vector_isa()
    Py_ssize_t el_nms(const float *boxes, const float *scores, const int64_t *classes,
                      Py_ssize_t n, double iou_threshold, double score_threshold,
                      Py_ssize_t top_k, int64_t *keep)
    int el_motion_cells(const el_image *src, int factor, uint8_t *out)
    int64_t el_motion_diff(const uint8_t *prev, const uint8_t *cur, int height, int width,
                           int channels, int threshold, int box[4])
    int el_add_wrapped(const el_image *base, uint8_t level, const el_image *noise, uint8_t *out,
                       Py_ssize_t out_stride)
    int el_paint_wrapped(uint8_t *out, Py_ssize_t out_stride, const el_image *noise,
                         const uint8_t *mask, Py_ssize_t mask_stride, const uint8_t colour[3])
