/* bmp.c: our own BMP decoder (Windows BITMAPINFOHEADER and its V2..V5 extensions): 8-bit
   palette (the NEU data sets), 24-bit and 32-bit BGR(X), bottom-up and top-down rows, padded
   rows. Compressed, 1/4/16-bit and OS/2 variants are refused with the reason. */
#include "io.h"
#include <stdlib.h>
#include <string.h>

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

enum { BI_RGB = 0, BI_BITFIELDS = 3, FILE_HEADER = 14 };

int nad_bmp_decode(const char *fn, const char *name, const uint8_t *data, size_t size,
                   int32_t header_only, nad_raw_image *raw)
{
    memset(raw, 0, sizeof *raw);
    if (size < FILE_HEADER + 4 || data[0] != 'B' || data[1] != 'M')
        return nad_fail(NAD_EFORMAT, "%s: %s: %s", fn, name,
                        size >= 2 && data[0] == 'B' && data[1] == 'M' ? "truncated BMP data"
                                                                     : "not a BMP file");
    uint32_t pixel_offset = le32(data + 10);
    uint32_t hsize = le32(data + 14);
    if (hsize == 12)
        return nad_fail(NAD_EFORMAT, "%s: %s: unsupported BMP header (OS/2 BITMAPCOREHEADER)",
                        fn, name);
    if (hsize != 40 && hsize != 52 && hsize != 56 && hsize != 108 && hsize != 124)
        return nad_fail(NAD_EFORMAT, "%s: %s: unsupported BMP header size %u", fn, name,
                        (unsigned)hsize);
    if (size < FILE_HEADER + (size_t)hsize)
        return nad_fail(NAD_EFORMAT, "%s: %s: truncated BMP data", fn, name);
    const uint8_t *h = data + FILE_HEADER;
    int64_t width = (int32_t)le32(h + 4), height = (int32_t)le32(h + 8);
    int32_t planes = le16(h + 12), bpp = le16(h + 14);
    uint32_t compression = le32(h + 16), colours = le32(h + 32);
    int top_down = height < 0;
    if (top_down) height = -height;
    if (planes != 1)
        return nad_fail(NAD_EFORMAT, "%s: %s: BMP has %d planes, expected 1", fn, name, planes);
    if (bpp != 8 && bpp != 24 && bpp != 32)
        return nad_fail(NAD_EFORMAT, "%s: %s: unsupported BMP bit depth %d (8, 24 or 32 are read)",
                        fn, name, bpp);
    if (compression == BI_BITFIELDS && bpp == 32) {
        /* the masks follow a 40-byte header, or sit inside a V2..V5 one at the same place */
        if (size < FILE_HEADER + 40 + 12)
            return nad_fail(NAD_EFORMAT, "%s: %s: truncated BMP data", fn, name);
        uint32_t r = le32(h + 40), g = le32(h + 44), b = le32(h + 48);
        if (r != 0xff0000u || g != 0xff00u || b != 0xffu)
            return nad_fail(NAD_EFORMAT, "%s: %s: unsupported BMP bit fields %08x/%08x/%08x "
                            "(only BGRX is read)", fn, name, (unsigned)r, (unsigned)g, (unsigned)b);
    } else if (compression != BI_RGB) {
        return nad_fail(NAD_EFORMAT, "%s: %s: unsupported BMP compression %u", fn, name,
                        (unsigned)compression);
    }
    if (!nad_image_size_ok(width, height)) return nad_image_size_fail(fn, name, "BMP", width, height);
    raw->width = (int32_t)width;
    raw->height = (int32_t)height;
    raw->bits = 8;
    raw->channels = bpp == 8 ? 1 : 3;
    if (bpp == 8) {
        if (colours == 0) colours = 256;
        if (colours > 256)
            return nad_fail(NAD_EFORMAT, "%s: %s: BMP palette of %u colours, at most 256",
                            fn, name, (unsigned)colours);
        size_t pal = FILE_HEADER + (size_t)hsize + (compression == BI_BITFIELDS ? 12 : 0);
        if (pal + 4 * (size_t)colours > size)
            return nad_fail(NAD_EFORMAT, "%s: %s: truncated BMP data", fn, name);
        raw->indexed = 1;
        raw->palette_size = (int32_t)colours;
        raw->palette_grey = 1;
        for (uint32_t i = 0; i < colours; i++) {
            const uint8_t *e = data + pal + 4 * i; /* B, G, R, reserved */
            raw->palette[i][0] = e[2];
            raw->palette[i][1] = e[1];
            raw->palette[i][2] = e[0];
            raw->palette_grey &= e[0] == e[1] && e[1] == e[2];
        }
    }
    size_t stride = ((size_t)width * (size_t)bpp + 31) / 32 * 4;
    if (pixel_offset < FILE_HEADER + hsize || pixel_offset > size ||
        (size - pixel_offset) / stride < (size_t)height) {
        /* the last row may lack its padding: some writers drop it */
        size_t need = stride * (size_t)(height - 1) + (size_t)width * (size_t)(bpp / 8);
        if (pixel_offset < FILE_HEADER + hsize)
            return nad_fail(NAD_EFORMAT, "%s: %s: BMP pixel data offset %u inside the header",
                            fn, name, (unsigned)pixel_offset);
        if (pixel_offset > size || size - pixel_offset < need)
            return nad_fail(NAD_EFORMAT, "%s: %s: truncated BMP data", fn, name);
    }
    if (header_only) return 0;
    size_t out_stride = (size_t)width * (size_t)raw->channels;
    raw->pixels = malloc(out_stride * (size_t)height);
    if (!raw->pixels) return nad_fail(NAD_ENOMEM, "%s: %s: out of memory", fn, name);
    for (int64_t y = 0; y < height; y++) {
        const uint8_t *src = data + pixel_offset + stride * (size_t)(top_down ? y : height - 1 - y);
        uint8_t *dst = raw->pixels + out_stride * (size_t)y;
        if (bpp == 8) {
            memcpy(dst, src, (size_t)width);
        } else {
            int step = bpp / 8;
            for (int64_t x = 0; x < width; x++, src += step, dst += 3) {
                dst[0] = src[2];
                dst[1] = src[1];
                dst[2] = src[0];
            }
        }
    }
    return 0;
}
