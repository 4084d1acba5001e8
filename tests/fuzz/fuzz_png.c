/* fuzz_png.c: libFuzzer entry point for the PNG decoder (core/io/png.c); built and run by
   tests/fuzz/run.sh. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_one(nad_png_decode, data, size);
}
