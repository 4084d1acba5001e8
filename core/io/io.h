/* io.h: what the image decoders of core/io/ share: the raw decoded image (samples as stored
   in the file) and one decode-from-memory function per format. image.c turns raw images into
   tensors; the fuzzers in tests/fuzz call these functions directly. */
#ifndef AUTONAD_IO_H
#define AUTONAD_IO_H
#include "../internal.h"
#include <stdint.h>

/* Larger images are refused before anything is allocated. */
enum { NAD_IMAGE_MAX_SIDE = 16384 };

/* A decoded image as the file stores it. Samples are row-major, pixel after pixel, one byte
   each (bits 1..8: unpacked, not rescaled) or two bytes big-endian (bits 16). indexed images
   hold one palette index per pixel; palette is padded with black to 256 entries, so every
   index maps to a colour. */
typedef struct nad_raw_image {
    int32_t height;
    int32_t width;
    int32_t channels;     /* samples per pixel: 1 grey/index, 2 grey+alpha, 3 RGB, 4 RGBA */
    int32_t bits;         /* significant bits per sample: 1, 2, 4, 8 or 16 */
    int32_t indexed;      /* 1: samples are palette indices */
    int32_t palette_size; /* entries the file defines (indexed only) */
    int32_t palette_grey; /* 1: every defined palette entry has r == g == b */
    uint8_t palette[256][3];
    uint8_t *pixels; /* malloc'd; NULL after a header-only decode or a failure */
} nad_raw_image;

/* Decode data[0..size). header_only: fill the sizes, channels, bits and palette only.
   Returns 0, or a negative code with the message "<fn>: <name>: <reason>"; on failure
   raw->pixels is NULL and nothing needs freeing. */
int nad_png_decode(const char *fn, const char *name, const uint8_t *data, size_t size,
                   int32_t header_only, nad_raw_image *raw);
int nad_jpeg_decode(const char *fn, const char *name, const uint8_t *data, size_t size,
                    int32_t header_only, nad_raw_image *raw);
int nad_bmp_decode(const char *fn, const char *name, const uint8_t *data, size_t size,
                   int32_t header_only, nad_raw_image *raw);
void nad_raw_image_free(nad_raw_image *raw);

/* Channels an image reports (nad_image_info): palettes count as 1 when grey, else 3. */
int32_t nad_raw_file_channels(const nad_raw_image *raw);
/* out[H*W*channels] = the image in [0,1], channels 1 (luma) or 3; cannot fail. */
void nad_raw_to_image(const nad_raw_image *raw, int32_t channels, float *out);
/* out[H*W] = class indices (threshold < 0) or value where the 8-bit-scaled pixel >=
   threshold. A colour image in class-index mode must be grey (r == g == b) everywhere;
   otherwise NAD_EFORMAT naming the first colour pixel ("<fn>: <name>: ..."). */
int nad_raw_to_mask(const char *fn, const char *name, const nad_raw_image *raw,
                    int32_t threshold, int32_t value, float *out);
/* 1 when a header's declared size is acceptable (1..NAD_IMAGE_MAX_SIDE per side). */
static inline int nad_image_size_ok(int64_t width, int64_t height)
{
    return width >= 1 && height >= 1 && width <= NAD_IMAGE_MAX_SIDE && height <= NAD_IMAGE_MAX_SIDE;
}
/* NAD_EFORMAT "<fn>: <name>: <format> image is WxH, ..." for a size nad_image_size_ok refused. */
int nad_image_size_fail(const char *fn, const char *name, const char *format, int64_t width,
                        int64_t height);

#endif
