/* fuzz_bmp.c: libFuzzer entry point for the BMP decoder (core/io/bmp.c); built and run by
   tests/fuzz/run.sh. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_one(nad_bmp_decode, data, size);
}
