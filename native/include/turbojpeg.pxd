# The TurboJPEG C API of libjpeg-turbo, declared once (as PyAV declares each library it binds).
#
# Only the TurboJPEG 2.x API is declared: libjpeg-turbo 2.1 (Debian 12, Ubuntu 22.04, JetPack 6)
# has nothing newer, and 3.x still exports every one of these functions unchanged, so the
# extension builds and runs against both. ``cimport turbojpeg as tj`` and call ``tj.tjCompress2``.

cdef extern from "turbojpeg.h" nogil:
    ctypedef void *tjhandle

    ctypedef struct tjscalingfactor:
        int num
        int denom

    # Chrominance subsampling (enum TJSAMP).
    int TJSAMP_444
    int TJSAMP_422
    int TJSAMP_420
    int TJSAMP_GRAY
    int TJSAMP_440
    int TJSAMP_411

    # Pixel formats (enum TJPF) and their sizes in bytes.
    int TJPF_RGB
    int TJPF_BGR
    int TJPF_RGBX
    int TJPF_BGRX
    int TJPF_XBGR
    int TJPF_XRGB
    int TJPF_GRAY
    int TJPF_RGBA
    int TJPF_BGRA
    int TJPF_ABGR
    int TJPF_ARGB
    int TJPF_CMYK
    int TJ_NUMPF
    const int tjPixelSize[]

    # JPEG colourspaces (enum TJCS).
    int TJCS_RGB
    int TJCS_YCbCr
    int TJCS_GRAY
    int TJCS_CMYK
    int TJCS_YCCK

    # Error severities (enum TJERR).
    int TJERR_WARNING
    int TJERR_FATAL

    # Flags.
    int TJFLAG_BOTTOMUP
    int TJFLAG_FASTUPSAMPLE
    int TJFLAG_NOREALLOC
    int TJFLAG_FASTDCT
    int TJFLAG_ACCURATEDCT
    int TJFLAG_STOPONWARNING
    int TJFLAG_PROGRESSIVE
    int TJFLAG_LIMITSCANS

    # Compression.
    tjhandle tjInitCompress()
    int tjCompress2(tjhandle handle, const unsigned char *srcBuf, int width, int pitch,
                    int height, int pixelFormat, unsigned char **jpegBuf,
                    unsigned long *jpegSize, int jpegSubsamp, int jpegQual, int flags)
    unsigned long tjBufSize(int width, int height, int jpegSubsamp)

    # Decompression.
    tjhandle tjInitDecompress()
    int tjDecompressHeader3(tjhandle handle, const unsigned char *jpegBuf,
                            unsigned long jpegSize, int *width, int *height,
                            int *jpegSubsamp, int *jpegColorspace)
    tjscalingfactor *tjGetScalingFactors(int *numScalingFactors)
    int tjDecompress2(tjhandle handle, const unsigned char *jpegBuf, unsigned long jpegSize,
                      unsigned char *dstBuf, int width, int pitch, int height,
                      int pixelFormat, int flags)

    # Handles, buffers, errors.
    int tjDestroy(tjhandle handle)
    unsigned char *tjAlloc(int bytes)
    void tjFree(unsigned char *buffer)
    char *tjGetErrorStr2(tjhandle handle)
    int tjGetErrorCode(tjhandle handle)
