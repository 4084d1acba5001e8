/* jpeg.c: JPEG decoding from memory with libjpeg-turbo's libjpeg API (grey and colour) into a
   nad_raw_image. A custom error manager turns libjpeg's errors, and the warnings that mean
   lost data (truncated or damaged entropy data), into NAD_EFORMAT; nothing exits or prints. */
#include "io.h"
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
/* jpeglib.h needs size_t and FILE declared first */
#include <jpeglib.h>
#include <jerror.h>

/* A progressive file may declare thousands of tiny scans, each a pass over the whole
   coefficient buffer: a few bytes can cost minutes. Real files use about 10. */
enum { MAX_SCANS = 500 };

typedef struct jpeg_ctx {
    struct jpeg_error_mgr pub; /* first: libjpeg hands us a pointer to it */
    struct jpeg_progress_mgr progress;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX + 32];
    int truncated;
    int64_t width, height;
    nad_raw_image *raw;
} jpeg_ctx;

static void on_error_exit(j_common_ptr cinfo)
{
    jpeg_ctx *c = (jpeg_ctx *)cinfo->err;
    char buf[JMSG_LENGTH_MAX];
    (*cinfo->err->format_message)(cinfo, buf);
    snprintf(c->msg, sizeof c->msg, "%s", buf);
    longjmp(c->jb, 1);
}

/* Warnings (level < 0): most are harmless (extraneous bytes between markers), but these mean
   the pixels are not what the file should hold, so they fail the decode. */
static void on_emit_message(j_common_ptr cinfo, int level)
{
    if (level >= 0) return;
    jpeg_ctx *c = (jpeg_ctx *)cinfo->err;
    int code = cinfo->err->msg_code;
    if (code == JWRN_JPEG_EOF) {
        c->truncated = 1;
        longjmp(c->jb, 1);
    }
    if (code == JWRN_HIT_MARKER || code == JWRN_MUST_RESYNC || code == JWRN_NOT_SEQUENTIAL ||
        code == JWRN_BOGUS_PROGRESSION || code == JWRN_HUFF_BAD_CODE ||
        code == JWRN_ARITH_BAD_CODE) {
        char buf[JMSG_LENGTH_MAX];
        (*cinfo->err->format_message)(cinfo, buf);
        snprintf(c->msg, sizeof c->msg, "%s", buf);
        longjmp(c->jb, 1);
    }
}

static void on_output_message(j_common_ptr cinfo) { (void)cinfo; }

static void on_progress(j_common_ptr cinfo)
{
    if (!cinfo->is_decompressor) return;
    j_decompress_ptr d = (j_decompress_ptr)cinfo;
    if (d->input_scan_number > MAX_SCANS) {
        jpeg_ctx *c = (jpeg_ctx *)cinfo->err;
        snprintf(c->msg, sizeof c->msg, "more than %d progressive scans", MAX_SCANS);
        longjmp(c->jb, 1);
    }
}

/* All work that may longjmp happens here; its state lives in *c and *cinfo, owned by the
   caller, so nothing local is modified between setjmp and longjmp. */
static int decode_inner(j_decompress_ptr cinfo, jpeg_ctx *c, const uint8_t *data, size_t size,
                        int32_t header_only)
{
    if (setjmp(c->jb)) return -1;
    jpeg_create_decompress(cinfo);
    cinfo->progress = &c->progress;
    jpeg_mem_src(cinfo, data, (unsigned long)size);
    jpeg_read_header(cinfo, TRUE);
    nad_raw_image *raw = c->raw;
    c->width = cinfo->image_width;
    c->height = cinfo->image_height;
    if (!nad_image_size_ok(c->width, c->height)) return -2;
    raw->width = (int32_t)c->width;
    raw->height = (int32_t)c->height;
    raw->bits = 8;
    switch (cinfo->jpeg_color_space) {
    case JCS_GRAYSCALE:
        raw->channels = 1;
        cinfo->out_color_space = JCS_GRAYSCALE;
        break;
    case JCS_YCbCr:
    case JCS_RGB:
        raw->channels = 3;
        cinfo->out_color_space = JCS_RGB;
        break;
    default:
        snprintf(c->msg, sizeof c->msg, "unsupported JPEG colour space %s (%d components)",
                 cinfo->jpeg_color_space == JCS_CMYK   ? "CMYK"
                 : cinfo->jpeg_color_space == JCS_YCCK ? "YCCK"
                                                       : "unknown",
                 cinfo->num_components);
        return -3;
    }
    if (header_only) return 0;
    jpeg_start_decompress(cinfo);
    if ((int)cinfo->output_components != raw->channels ||
        cinfo->output_width != (JDIMENSION)raw->width ||
        cinfo->output_height != (JDIMENSION)raw->height) {
        snprintf(c->msg, sizeof c->msg, "unexpected output geometry");
        return -3;
    }
    size_t stride = (size_t)raw->width * (size_t)raw->channels;
    raw->pixels = malloc(stride * (size_t)raw->height);
    if (!raw->pixels) return -4;
    while (cinfo->output_scanline < cinfo->output_height) {
        JSAMPROW row = raw->pixels + stride * cinfo->output_scanline;
        jpeg_read_scanlines(cinfo, &row, 1);
    }
    jpeg_finish_decompress(cinfo);
    return 0;
}

int nad_jpeg_decode(const char *fn, const char *name, const uint8_t *data, size_t size,
                    int32_t header_only, nad_raw_image *raw)
{
    memset(raw, 0, sizeof *raw);
    if (size == 0) return nad_fail(NAD_EFORMAT, "%s: %s: truncated JPEG data", fn, name);
    struct jpeg_decompress_struct cinfo;
    memset(&cinfo, 0, sizeof cinfo);
    jpeg_ctx c;
    memset(&c, 0, sizeof c);
    c.raw = raw;
    cinfo.err = jpeg_std_error(&c.pub);
    c.pub.error_exit = on_error_exit;
    c.pub.emit_message = on_emit_message;
    c.pub.output_message = on_output_message;
    c.progress.progress_monitor = on_progress;
    int rc = decode_inner(&cinfo, &c, data, size, header_only);
    jpeg_destroy_decompress(&cinfo);
    if (rc == 0) return 0;
    nad_raw_image_free(raw);
    if (rc == -4) return nad_fail(NAD_ENOMEM, "%s: %s: out of memory", fn, name);
    if (c.truncated) return nad_fail(NAD_EFORMAT, "%s: %s: truncated JPEG data", fn, name);
    if (rc == -2) return nad_image_size_fail(fn, name, "JPEG", c.width, c.height);
    if (rc == -3) return nad_fail(NAD_EFORMAT, "%s: %s: %s", fn, name, c.msg);
    return nad_fail(NAD_EFORMAT, "%s: %s: corrupt JPEG (%s)", fn, name, c.msg);
}
