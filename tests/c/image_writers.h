/* image_writers.h: small image writers for the image tests (tests/c/test_image.c) and the fuzz
   seed generator (tests/fuzz/make_seeds.c): PNG through libpng, JPEG through libjpeg, BMP by
   hand (so the tests can build the odd variants a library would not write). Header-only. */
#ifndef AUTONAD_TEST_IMAGE_WRITERS_H
#define AUTONAD_TEST_IMAGE_WRITERS_H
#include <png.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>

/* A PNG of w x h pixels; samples holds channels-per-pixel samples per pixel, one byte each
   for depth <= 8 (values < 2^depth) or two bytes big-endian for depth 16. palette (rgb
   triples, npal entries) for PNG_COLOR_TYPE_PALETTE; trns/ntrns optional. Returns 0. */
static inline int tw_png(const char *path, int w, int h, int color_type, int depth,
                         int interlace, const uint8_t *samples, const uint8_t *palette, int npal,
                         const uint8_t *trns, int ntrns)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        fclose(f);
        return -1;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, color_type,
                 interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (palette) png_set_PLTE(png, info, (png_const_colorp)palette, npal);
    if (trns) png_set_tRNS(png, info, trns, ntrns, NULL);
    png_write_info(png, info);
    if (depth < 8) png_set_packing(png);
    int ch = color_type == PNG_COLOR_TYPE_GRAY || color_type == PNG_COLOR_TYPE_PALETTE ? 1
             : color_type == PNG_COLOR_TYPE_GRAY_ALPHA                                 ? 2
             : color_type == PNG_COLOR_TYPE_RGB                                        ? 3
                                                                                       : 4;
    size_t stride = (size_t)w * ch * (depth == 16 ? 2 : 1);
    png_bytep *rows = malloc(sizeof(png_bytep) * h);
    for (int y = 0; y < h; y++) rows[y] = (png_bytep)samples + stride * y;
    png_write_image(png, rows);
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    free(rows);
    return fclose(f);
}

/* A baseline (or progressive) JPEG; comps 1 (grey) or 3 (RGB), no chroma subsampling. */
static inline int tw_jpeg(const char *path, int w, int h, int comps, int quality,
                          int progressive, const uint8_t *pixels)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr err;
    c.err = jpeg_std_error(&err);
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, f);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = comps;
    c.in_color_space = comps == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, quality, TRUE);
    for (int i = 0; i < c.num_components; i++)
        c.comp_info[i].h_samp_factor = c.comp_info[i].v_samp_factor = 1;
    if (progressive) jpeg_simple_progression(&c);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = (JSAMPROW)pixels + (size_t)c.next_scanline * w * comps;
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    return fclose(f);
}

static inline void tw_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16), p[3] = (uint8_t)(v >> 24);
}

/* A BMP with a 40-byte BITMAPINFOHEADER, rows padded to 4 bytes, bottom-up unless top_down.
   bpp 8: pixels are indices, palette holds npal RGB triples; bpp 24/32: pixels are RGB
   triples (written as BGR / BGRX). compression is written as given (tests of refusals).
   Returns the file size, or -1. */
static inline long tw_bmp(const char *path, int w, int h, int bpp, int top_down,
                          const uint8_t *pixels, const uint8_t *palette, int npal,
                          uint32_t compression)
{
    size_t stride = ((size_t)w * bpp + 31) / 32 * 4;
    size_t pal = bpp == 8 ? 4 * (size_t)npal : 0, off = 14 + 40 + pal;
    size_t total = off + stride * h;
    uint8_t *b = calloc(1, total);
    b[0] = 'B', b[1] = 'M';
    tw_le32(b + 2, (uint32_t)total);
    tw_le32(b + 10, (uint32_t)off);
    tw_le32(b + 14, 40);
    tw_le32(b + 18, (uint32_t)w);
    tw_le32(b + 22, (uint32_t)(top_down ? -h : h));
    b[26] = 1;
    b[28] = (uint8_t)bpp;
    tw_le32(b + 30, compression);
    tw_le32(b + 34, (uint32_t)(stride * h));
    tw_le32(b + 46, bpp == 8 ? (uint32_t)npal : 0);
    for (int i = 0; i < (bpp == 8 ? npal : 0); i++) {
        b[54 + 4 * i] = palette[3 * i + 2];
        b[55 + 4 * i] = palette[3 * i + 1];
        b[56 + 4 * i] = palette[3 * i];
    }
    for (int y = 0; y < h; y++) {
        uint8_t *row = b + off + stride * (top_down ? y : h - 1 - y);
        for (int x = 0; x < w; x++) {
            const uint8_t *p = pixels + ((size_t)y * w + x) * (bpp == 8 ? 1 : 3);
            if (bpp == 8) {
                row[x] = p[0];
            } else {
                uint8_t *q = row + (size_t)x * (bpp / 8);
                q[0] = p[2], q[1] = p[1], q[2] = p[0];
                if (bpp == 32) q[3] = 255;
            }
        }
        /* padding bytes hold garbage a decoder must skip */
        for (size_t k = (size_t)w * (bpp / 8); k < stride; k++) row[k] = 0xAB;
    }
    FILE *f = fopen(path, "wb");
    size_t n = f ? fwrite(b, 1, total, f) : 0;
    free(b);
    if (!f || fclose(f) != 0 || n != total) return -1;
    return (long)total;
}

#endif
