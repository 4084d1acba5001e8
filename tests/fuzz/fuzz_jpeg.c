/* fuzz_jpeg.c: libFuzzer entry point for the JPEG decoder (core/io/jpeg.c); built and run by
   tests/fuzz/run.sh. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_one(nad_jpeg_decode, data, size);
}
