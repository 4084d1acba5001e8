/* image.c: the public image and mask API: reads a file into memory once, sniffs the format
   from its magic bytes, decodes with png.c / jpeg.c / bmp.c, and converts the raw samples to
   float tensors. Used by the data loaders and by lua/autonad/image.lua. */
#include "io.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Larger files are refused before reading: no image we take needs that much. */
static const int64_t MAX_FILE_BYTES = (int64_t)1 << 30;

typedef int (*decode_fn)(const char *, const char *, const uint8_t *, size_t, int32_t,
                         nad_raw_image *);

void nad_raw_image_free(nad_raw_image *raw)
{
    free(raw->pixels);
    raw->pixels = NULL;
}

int nad_image_size_fail(const char *fn, const char *name, const char *format, int64_t width,
                        int64_t height)
{
    if (width < 1 || height < 1)
        return nad_fail(NAD_EFORMAT, "%s: %s: %s image is %lldx%lld, empty", fn, name, format,
                        (long long)width, (long long)height);
    return nad_fail(NAD_EFORMAT, "%s: %s: %s image is %lldx%lld, larger than %dx%d", fn, name,
                    format, (long long)width, (long long)height, NAD_IMAGE_MAX_SIDE,
                    NAD_IMAGE_MAX_SIDE);
}

int32_t nad_raw_file_channels(const nad_raw_image *raw)
{
    if (raw->indexed) return raw->palette_grey ? 1 : 3;
    return raw->channels;
}

/* The decoder for the content, by magic bytes; NULL with the error set. */
static decode_fn sniff(const char *fn, const char *name, const uint8_t *d, size_t n)
{
    static const uint8_t png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (n == 0) {
        nad_fail(NAD_EFORMAT, "%s: %s: empty file", fn, name);
        return NULL;
    }
    if (n >= 8 && memcmp(d, png_magic, 8) == 0) return nad_png_decode;
    if (n >= 3 && d[0] == 0xff && d[1] == 0xd8 && d[2] == 0xff) return nad_jpeg_decode;
    if (n >= 2 && d[0] == 'B' && d[1] == 'M') return nad_bmp_decode;
    nad_fail(NAD_EFORMAT, "%s: %s: unknown image format (not PNG, JPEG or BMP)", fn, name);
    return NULL;
}

/* The whole file in a malloc'd buffer (*data, *size); NAD_EIO naming the path on failure. */
static int read_file(const char *fn, const char *path, uint8_t **data, size_t *size)
{
    *data = NULL;
    *size = 0;
    if (!path) return nad_fail(NAD_EINVAL, "%s: path is NULL", fn);
    FILE *f = fopen(path, "rb");
    if (!f) return nad_fail(NAD_EIO, "%s: %s: cannot open (%s)", fn, path, strerror(errno));
    int64_t n = -1;
    if (fseek(f, 0, SEEK_END) == 0) n = ftell(f);
    if (n < 0 || fseek(f, 0, SEEK_SET) != 0) {
        int e = errno;
        fclose(f);
        return nad_fail(NAD_EIO, "%s: %s: cannot read (%s)", fn, path, strerror(e));
    }
    if (n > MAX_FILE_BYTES) {
        fclose(f);
        return nad_fail(NAD_EFORMAT, "%s: %s: file of %lld bytes is larger than 1 GiB", fn, path,
                        (long long)n);
    }
    uint8_t *buf = malloc((size_t)n + 1);
    if (!buf) {
        fclose(f);
        return nad_fail(NAD_ENOMEM, "%s: %s: out of memory", fn, path);
    }
    size_t got = fread(buf, 1, (size_t)n, f);
    int e = ferror(f) ? errno : 0;
    fclose(f);
    if (got != (size_t)n) {
        free(buf);
        if (e) return nad_fail(NAD_EIO, "%s: %s: cannot read (%s)", fn, path, strerror(e));
        return nad_fail(NAD_EIO, "%s: %s: file changed size while read", fn, path);
    }
    *data = buf;
    *size = (size_t)n;
    return 0;
}

/* Sample k of pixel i as stored (one byte, or two big-endian for 16 bits). */
static inline uint32_t sample(const nad_raw_image *raw, size_t i, int32_t k)
{
    size_t j = i * (size_t)raw->channels + (size_t)k;
    if (raw->bits == 16) return (uint32_t)raw->pixels[2 * j] << 8 | raw->pixels[2 * j + 1];
    return raw->pixels[j];
}

static inline float luma(float r, float g, float b)
{
    /* ITU-R BT.601; a grey pixel keeps its exact value */
    if (r == g && g == b) return r;
    return 0.299f * r + 0.587f * g + 0.114f * b;
}

void nad_raw_to_image(const nad_raw_image *raw, int32_t channels, float *out)
{
    size_t n = (size_t)raw->height * (size_t)raw->width;
    float maxval = raw->indexed ? 255.0f : (float)((1u << raw->bits) - 1);
    if (raw->bits == 16) {
        for (size_t i = 0; i < n; i++) {
            float v[3];
            int grey = raw->channels < 3;
            for (int k = 0; k < 3; k++) v[k] = (float)sample(raw, i, grey ? 0 : k) / maxval;
            if (channels == 1) out[i] = luma(v[0], v[1], v[2]);
            else memcpy(out + 3 * i, v, sizeof v);
        }
        return;
    }
    float lut[256];
    for (int v = 0; v < 256; v++) lut[v] = (float)v / maxval;
    for (size_t i = 0; i < n; i++) {
        float v[3];
        if (raw->indexed) {
            const uint8_t *c = raw->palette[raw->pixels[i]];
            for (int k = 0; k < 3; k++) v[k] = lut[c[k]];
        } else if (raw->channels < 3) {
            v[0] = v[1] = v[2] = lut[raw->pixels[i * (size_t)raw->channels]];
        } else {
            const uint8_t *p = raw->pixels + i * (size_t)raw->channels;
            for (int k = 0; k < 3; k++) v[k] = lut[p[k]];
        }
        if (channels == 1) out[i] = luma(v[0], v[1], v[2]);
        else memcpy(out + 3 * i, v, sizeof v);
    }
}

int nad_raw_to_mask(const char *fn, const char *name, const nad_raw_image *raw,
                    int32_t threshold, int32_t value, float *out)
{
    size_t n = (size_t)raw->height * (size_t)raw->width;
    uint32_t maxval = (1u << raw->bits) - 1;
    for (size_t i = 0; i < n; i++) {
        uint32_t v;
        if (raw->indexed || raw->channels < 3) {
            v = sample(raw, i, 0);
        } else {
            uint32_t r = sample(raw, i, 0), g = sample(raw, i, 1), b = sample(raw, i, 2);
            if (threshold < 0 && (r != g || g != b))
                return nad_fail(NAD_EFORMAT, "%s: %s: colour pixel (%u,%u,%u) at row %lld, "
                                "column %lld: a class mask must be a grey or palette image",
                                fn, name, r, g, b, (long long)(i / (size_t)raw->width),
                                (long long)(i % (size_t)raw->width));
            v = (uint32_t)(0.299 * r + 0.587 * g + 0.114 * b + 0.5);
        }
        if (threshold < 0) {
            out[i] = (float)v;
        } else {
            /* compare on the 8-bit scale whatever the file's depth (palette: the index) */
            uint32_t v8 = raw->indexed || raw->bits == 8 ? v : (v * 255 + maxval / 2) / maxval;
            out[i] = (int64_t)v8 >= threshold ? (float)value : 0.0f;
        }
    }
    return 0;
}

/* Resizes out to the sizes and fills it from src (contiguous floats), through a copy when out
   is a strided view of the right shape. Nothing is written unless everything succeeds. */
static int store(const char *fn, int32_t ndim, const int64_t *sizes, const float *src,
                 nad_tensor *out)
{
    int rc = nad_tensor_resize(out, ndim, sizes);
    if (rc) return rc;
    size_t n = (size_t)nad_numel(out);
    if (nad_is_contiguous(out)) {
        memcpy(nad_data(out), src, n * sizeof(float));
        return 0;
    }
    nad_tensor *tmp = nad_tensor_new(ndim, sizes);
    if (!tmp) return nad_fail(NAD_ENOMEM, "%s: out of memory", fn);
    memcpy(nad_data(tmp), src, n * sizeof(float));
    rc = nad_tensor_copy(out, tmp);
    nad_tensor_free(tmp);
    return rc;
}

static int decode_image(const char *fn, const char *name, const uint8_t *data, size_t size,
                        int32_t channels, nad_tensor *img)
{
    decode_fn decode = sniff(fn, name, data, size);
    if (!decode) return NAD_EFORMAT;
    nad_raw_image raw;
    int rc = decode(fn, name, data, size, 0, &raw);
    if (rc) return rc;
    size_t n = (size_t)raw.height * (size_t)raw.width * (size_t)channels;
    float *buf = malloc(n * sizeof(float));
    if (!buf) {
        nad_raw_image_free(&raw);
        return nad_fail(NAD_ENOMEM, "%s: %s: out of memory", fn, name);
    }
    nad_raw_to_image(&raw, channels, buf);
    int64_t sizes[3] = {raw.height, raw.width, channels};
    nad_raw_image_free(&raw);
    rc = store(fn, 3, sizes, buf, img);
    free(buf);
    return rc;
}

static int decode_mask(const char *fn, const char *name, const uint8_t *data, size_t size,
                       int32_t threshold, int32_t value, nad_tensor *mask)
{
    decode_fn decode = sniff(fn, name, data, size);
    if (!decode) return NAD_EFORMAT;
    nad_raw_image raw;
    int rc = decode(fn, name, data, size, 0, &raw);
    if (rc) return rc;
    float *buf = malloc((size_t)raw.height * (size_t)raw.width * sizeof(float));
    if (!buf) {
        nad_raw_image_free(&raw);
        return nad_fail(NAD_ENOMEM, "%s: %s: out of memory", fn, name);
    }
    rc = nad_raw_to_mask(fn, name, &raw, threshold, value, buf);
    int64_t sizes[2] = {raw.height, raw.width};
    nad_raw_image_free(&raw);
    if (rc == 0) rc = store(fn, 2, sizes, buf, mask);
    free(buf);
    return rc;
}

static int check_channels(const char *fn, int32_t channels)
{
    if (channels == 1 || channels == 3) return 0;
    return nad_fail(NAD_EINVAL, "%s: channels must be 1 or 3, got %d", fn, channels);
}

int nad_image_decode(const char *name, const uint8_t *data, size_t size, int32_t channels,
                     nad_tensor *img)
{
    const char *fn = "image_decode";
    int rc = check_channels(fn, channels);
    if (rc || (rc = nad_check_tensor(fn, "img", img))) return rc;
    if (!data && size) return nad_fail(NAD_EINVAL, "%s: data is NULL", fn);
    return decode_image(fn, name ? name : "(memory)", data, size, channels, img);
}

int nad_mask_decode(const char *name, const uint8_t *data, size_t size, int32_t threshold,
                    int32_t value, nad_tensor *mask)
{
    const char *fn = "mask_decode";
    int rc = nad_check_tensor(fn, "mask", mask);
    if (rc) return rc;
    if (!data && size) return nad_fail(NAD_EINVAL, "%s: data is NULL", fn);
    return decode_mask(fn, name ? name : "(memory)", data, size, threshold, value, mask);
}

int nad_image_load(const char *path, int32_t channels, nad_tensor *img)
{
    const char *fn = "image_load";
    int rc = check_channels(fn, channels);
    if (rc || (rc = nad_check_tensor(fn, "img", img))) return rc;
    uint8_t *data;
    size_t size;
    if ((rc = read_file(fn, path, &data, &size))) return rc;
    rc = decode_image(fn, path, data, size, channels, img);
    free(data);
    return rc;
}

int nad_mask_load(const char *path, int32_t threshold, int32_t value, nad_tensor *mask)
{
    const char *fn = "mask_load";
    int rc = nad_check_tensor(fn, "mask", mask);
    if (rc) return rc;
    uint8_t *data;
    size_t size;
    if ((rc = read_file(fn, path, &data, &size))) return rc;
    rc = decode_mask(fn, path, data, size, threshold, value, mask);
    free(data);
    return rc;
}

int nad_image_info(const char *path, int32_t *height, int32_t *width, int32_t *channels)
{
    const char *fn = "image_info";
    if (!height || !width || !channels)
        return nad_fail(NAD_EINVAL, "%s: height, width and channels must not be NULL", fn);
    uint8_t *data;
    size_t size;
    int rc = read_file(fn, path, &data, &size);
    if (rc) return rc;
    decode_fn decode = sniff(fn, path, data, size);
    nad_raw_image raw;
    rc = decode ? decode(fn, path, data, size, 1, &raw) : NAD_EFORMAT;
    free(data);
    if (rc) return rc;
    *height = raw.height;
    *width = raw.width;
    *channels = nad_raw_file_channels(&raw);
    return 0;
}
