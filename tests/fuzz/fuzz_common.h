/* fuzz_common.h: the body the three decoder fuzzers share: decode the header, then (for
   images up to 4 Mpixels, to stay inside the fuzzer's memory limit) the pixels, convert them
   every way the loaders do, and check the invariants a correct decoder keeps. A broken
   invariant aborts, which libFuzzer reports as a crash. */
#ifndef AUTONAD_FUZZ_COMMON_H
#define AUTONAD_FUZZ_COMMON_H
#include "../../core/io/io.h"
#include <stdlib.h>

typedef int (*fuzz_decoder)(const char *, const char *, const uint8_t *, size_t, int32_t,
                            nad_raw_image *);

static int fuzz_one(fuzz_decoder decode, const uint8_t *data, size_t size)
{
    nad_raw_image head, raw;
    if (decode("fuzz", "input", data, size, 1, &head) != 0) return 0;
    if (head.pixels || !nad_image_size_ok(head.width, head.height)) abort();
    if ((int64_t)head.width * head.height > ((int64_t)1 << 22)) return 0;
    if (decode("fuzz", "input", data, size, 0, &raw) != 0) {
        if (raw.pixels) abort(); /* a failure leaves nothing to free */
        return 0;
    }
    if (raw.width != head.width || raw.height != head.height || raw.channels != head.channels ||
        raw.indexed != head.indexed || !raw.pixels)
        abort();
    size_t n = (size_t)raw.width * (size_t)raw.height;
    float *buf = malloc(n * 3 * sizeof(float));
    if (buf) {
        for (int32_t ch = 1; ch <= 3; ch += 2) {
            nad_raw_to_image(&raw, ch, buf);
            for (size_t i = 0; i < n * (size_t)ch; i++)
                if (!(buf[i] >= 0.0f && buf[i] <= 1.0f)) abort();
        }
        nad_raw_to_mask("fuzz", "input", &raw, -1, 0, buf);
        nad_raw_to_mask("fuzz", "input", &raw, 128, 1, buf);
        free(buf);
    }
    nad_raw_image_free(&raw);
    /* the public path: sniffing, conversion and the output tensor */
    int64_t zero = 0;
    nad_tensor *t = nad_tensor_new(1, &zero);
    if (t && nad_image_decode("input", data, size, 3, t) == 0 &&
        (nad_tensor_size(t, 0) != head.height || nad_tensor_size(t, 1) != head.width))
        abort();
    nad_tensor_free(t);
    return 0;
}

#endif
