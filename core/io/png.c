/* png.c: PNG decoding from memory with libpng (8/16-bit grey, grey+alpha, palette, RGB, RGBA,
   interlaced) into a nad_raw_image, and nad_png_save. libpng's errors come back through
   setjmp/longjmp as NAD_EFORMAT messages; it never prints (own error and warning functions). */
#include "io.h"
#include <errno.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct png_ctx {
    const uint8_t *data;
    size_t size, pos;
    int truncated;
    int64_t width, height;
    char msg[200];
    /* writing */
    FILE *file;
    int write_errno;
    /* reading */
    nad_raw_image *raw;
    png_bytep *rows;
} png_ctx;

static void on_error(png_structp png, png_const_charp msg)
{
    png_ctx *c = png_get_error_ptr(png);
    snprintf(c->msg, sizeof c->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg) { (void)png, (void)msg; }

static void read_mem(png_structp png, png_bytep out, size_t n)
{
    png_ctx *c = png_get_io_ptr(png);
    if (n > c->size - c->pos) {
        c->truncated = 1;
        png_error(png, "truncated PNG data");
    }
    memcpy(out, c->data + c->pos, n);
    c->pos += n;
}

/* All work that may longjmp happens here; its state lives in *c, owned by the caller, so
   nothing local is modified between setjmp and longjmp. */
static int decode_inner(png_structp png, png_infop info, png_ctx *c, int32_t header_only)
{
    if (setjmp(png_jmpbuf(png))) return -1;
    png_set_read_fn(png, c, read_mem);
    png_read_info(png, info);
    nad_raw_image *raw = c->raw;
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    int depth = png_get_bit_depth(png, info), type = png_get_color_type(png, info);
    c->width = w;
    c->height = h;
    if (!nad_image_size_ok(w, h)) return -2;
    raw->width = (int32_t)w;
    raw->height = (int32_t)h;
    raw->bits = depth;
    raw->channels = png_get_channels(png, info);
    if (type == PNG_COLOR_TYPE_PALETTE) {
        png_colorp pal = NULL;
        int n = 0;
        if (!png_get_PLTE(png, info, &pal, &n) || n < 1) png_error(png, "palette image without PLTE");
        raw->indexed = 1;
        raw->palette_size = n > 256 ? 256 : n;
        raw->palette_grey = 1;
        for (int i = 0; i < raw->palette_size; i++) {
            raw->palette[i][0] = pal[i].red;
            raw->palette[i][1] = pal[i].green;
            raw->palette[i][2] = pal[i].blue;
            raw->palette_grey &= pal[i].red == pal[i].green && pal[i].green == pal[i].blue;
        }
    }
    if (header_only) return 0;
    /* one sample per byte, values as stored (no rescaling, no palette expansion, no gamma) */
    if (depth < 8) png_set_packing(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    size_t want = (size_t)w * (size_t)raw->channels * (depth == 16 ? 2 : 1);
    if (rowbytes != want) png_error(png, "unexpected row size after transforms");
    raw->pixels = malloc(rowbytes * h + 1);
    c->rows = malloc(sizeof(png_bytep) * h + 1);
    if (!raw->pixels || !c->rows) {
        snprintf(c->msg, sizeof c->msg, "out of memory");
        return -3;
    }
    for (png_uint_32 y = 0; y < h; y++) c->rows[y] = raw->pixels + y * rowbytes;
    png_read_image(png, c->rows);
    png_read_end(png, NULL);
    return 0;
}

int nad_png_decode(const char *fn, const char *name, const uint8_t *data, size_t size,
                   int32_t header_only, nad_raw_image *raw)
{
    memset(raw, 0, sizeof *raw);
    png_ctx c = {.data = data, .size = size, .raw = raw};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &c, on_error, on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_read_struct(png ? &png : NULL, NULL, NULL);
        return nad_fail(NAD_ENOMEM, "%s: %s: out of memory", fn, name);
    }
    int rc = decode_inner(png, info, &c, header_only);
    png_destroy_read_struct(&png, &info, NULL);
    free(c.rows);
    if (rc == 0) return 0;
    nad_raw_image_free(raw);
    if (rc == -3) return nad_fail(NAD_ENOMEM, "%s: %s: out of memory", fn, name);
    if (c.truncated) return nad_fail(NAD_EFORMAT, "%s: %s: truncated PNG data", fn, name);
    if (rc == -2) return nad_image_size_fail(fn, name, "PNG", c.width, c.height);
    return nad_fail(NAD_EFORMAT, "%s: %s: corrupt PNG (%s)", fn, name, c.msg);
}

/* ---- writing ---- */

static void write_file(png_structp png, png_bytep buf, size_t n)
{
    png_ctx *c = png_get_io_ptr(png);
    if (fwrite(buf, 1, n, c->file) != n) {
        c->write_errno = errno;
        png_error(png, "write error");
    }
}

static void flush_file(png_structp png) { (void)png; }

static int encode_inner(png_structp png, png_infop info, png_ctx *c, const uint8_t *pix,
                        int32_t h, int32_t w, int32_t ch)
{
    if (setjmp(png_jmpbuf(png))) return -1;
    png_set_write_fn(png, c, write_file, flush_file);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8,
                 ch == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int32_t y = 0; y < h; y++) png_write_row(png, pix + (size_t)y * w * ch);
    png_write_end(png, info);
    return 0;
}

int nad_png_save(const char *path, const nad_tensor *img)
{
    if (!path) return nad_fail(NAD_EINVAL, "png_save: path is NULL");
    int rc = nad_check_tensor("png_save", "img", img);
    if (rc) return rc;
    int mask = img->ndim == 2;
    int32_t ch = mask ? 1 : (int32_t)img->size[2];
    if (!(mask || (img->ndim == 3 && (ch == 1 || ch == 3)))) {
        char b[96];
        return nad_fail(NAD_EINVAL, "png_save: img is %s, expected [H,W,1], [H,W,3] or a mask [H,W]",
                        nad_shape_str(img, b, sizeof b));
    }
    int64_t h = img->size[0], w = img->size[1];
    if (h < 1 || w < 1 || h > NAD_IMAGE_MAX_SIDE || w > NAD_IMAGE_MAX_SIDE)
        return nad_fail(NAD_EINVAL, "png_save: img is %lldx%lld, expected 1..%d per side",
                        (long long)w, (long long)h, NAD_IMAGE_MAX_SIDE);
    uint8_t *pix = malloc((size_t)(h * w * ch));
    if (!pix) return nad_fail(NAD_ENOMEM, "png_save: out of memory");
    const float *d = nad_data(img);
    for (int64_t y = 0; y < h; y++)
        for (int64_t x = 0; x < w; x++)
            for (int32_t k = 0; k < ch; k++) {
                float v = d[y * img->stride[0] + x * img->stride[1] + (mask ? 0 : k * img->stride[2])];
                uint8_t *o = pix + (y * w + x) * ch + k;
                if (mask) {
                    /* class indices must be exact: a value that is not one is a caller bug */
                    if (!(v >= 0 && v <= 255 && v == (float)(int)v)) {
                        free(pix);
                        return nad_fail(NAD_EINVAL, "png_save: mask value %g at row %lld, column "
                                        "%lld is not an integer in 0..255",
                                        (double)v, (long long)y, (long long)x);
                    }
                    *o = (uint8_t)v;
                } else {
                    v = v > 0 ? (v < 1 ? v : 1) : 0; /* NaN goes to 0 */
                    *o = (uint8_t)(v * 255.0f + 0.5f);
                }
            }
    png_ctx c = {0};
    c.file = fopen(path, "wb");
    if (!c.file) {
        int e = errno;
        free(pix);
        return nad_fail(NAD_EIO, "png_save: %s: cannot create (%s)", path, strerror(e));
    }
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &c, on_error, on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_write_struct(png ? &png : NULL, NULL);
        fclose(c.file);
        remove(path);
        free(pix);
        return nad_fail(NAD_ENOMEM, "png_save: out of memory");
    }
    rc = encode_inner(png, info, &c, pix, (int32_t)h, (int32_t)w, ch);
    png_destroy_write_struct(&png, &info);
    free(pix);
    if (fclose(c.file) != 0 && rc == 0) {
        rc = -1;
        c.write_errno = errno;
    }
    if (rc == 0) return 0;
    remove(path);
    if (c.write_errno)
        return nad_fail(NAD_EIO, "png_save: %s: write error (%s)", path, strerror(c.write_errno));
    return nad_fail(NAD_EIO, "png_save: %s: %s", path, c.msg);
}
