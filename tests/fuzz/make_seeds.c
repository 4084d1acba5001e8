/* make_seeds.c: writes the fuzzers' seed corpus (a few small images of every variant the
   decoders read) into <dir>/png, <dir>/jpeg and <dir>/bmp, so no binary is committed.
   Built and run by tests/fuzz/run.sh:  make_seeds <dir> */
#include "../c/image_writers.h"

static char base[400];

static const char *at(const char *sub, const char *name)
{
    static char p[600];
    snprintf(p, sizeof p, "%s/%s/%s", base, sub, name);
    return p;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: make_seeds <dir>\n");
        return 2;
    }
    snprintf(base, sizeof base, "%s", argv[1]);
    enum { W = 13, H = 7 };
    static uint8_t px[W * H * 8], pal[256 * 3], trns[4] = {0, 64, 128, 255};
    uint32_t s = 12345;
    for (size_t i = 0; i < sizeof px; i++) {
        s = s * 1664525u + 1013904223u;
        px[i] = (uint8_t)(s >> 24);
    }
    for (int i = 0; i < 256; i++) pal[3 * i] = (uint8_t)i, pal[3 * i + 1] = (uint8_t)(255 - i),
                                  pal[3 * i + 2] = (uint8_t)(i * 7);
    int bad = 0;
    /* PNG: every colour type and depth, some interlaced, palettes with tRNS */
    static const struct { int type, depth; } kinds[] = {
        {PNG_COLOR_TYPE_GRAY, 1},       {PNG_COLOR_TYPE_GRAY, 2},       {PNG_COLOR_TYPE_GRAY, 4},
        {PNG_COLOR_TYPE_GRAY, 8},       {PNG_COLOR_TYPE_GRAY, 16},      {PNG_COLOR_TYPE_GRAY_ALPHA, 8},
        {PNG_COLOR_TYPE_GRAY_ALPHA, 16}, {PNG_COLOR_TYPE_RGB, 8},       {PNG_COLOR_TYPE_RGB, 16},
        {PNG_COLOR_TYPE_RGBA, 8},       {PNG_COLOR_TYPE_RGBA, 16},      {PNG_COLOR_TYPE_PALETTE, 1},
        {PNG_COLOR_TYPE_PALETTE, 2},    {PNG_COLOR_TYPE_PALETTE, 4},    {PNG_COLOR_TYPE_PALETTE, 8},
    };
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        int type = kinds[k].type, depth = kinds[k].depth;
        uint8_t samples[sizeof px];
        int limit = depth < 8 ? 1 << depth : 256;
        for (size_t i = 0; i < sizeof px; i++) samples[i] = (uint8_t)(px[i] % limit);
        for (int il = 0; il <= 1; il++) {
            char name[64];
            snprintf(name, sizeof name, "t%d_d%d_i%d.png", type, depth, il);
            int pl = type == PNG_COLOR_TYPE_PALETTE;
            bad |= tw_png(at("png", name), W, H, type, depth, il, samples, pl ? pal : NULL,
                          pl ? limit : 0, pl ? trns : NULL, pl ? (limit < 4 ? limit : 4) : 0);
        }
    }
    /* JPEG: grey and colour, baseline and progressive, two qualities */
    for (int comps = 1; comps <= 3; comps += 2)
        for (int prog = 0; prog <= 1; prog++)
            for (int q = 50; q <= 100; q += 50) {
                char name[64];
                snprintf(name, sizeof name, "c%d_p%d_q%d.jpg", comps, prog, q);
                bad |= tw_jpeg(at("jpeg", name), W, H, comps, q, prog, px);
            }
    /* BMP: 8-bit grey and colour palettes, 24 and 32 bits, both row orders */
    static uint8_t grey[256 * 3];
    for (int i = 0; i < 256; i++) grey[3 * i] = grey[3 * i + 1] = grey[3 * i + 2] = (uint8_t)i;
    static const int bpps[] = {8, 8, 24, 32};
    for (int k = 0; k < 4; k++)
        for (int td = 0; td <= 1; td++) {
            char name[64];
            snprintf(name, sizeof name, "b%d_%d_td%d.bmp", bpps[k], k, td);
            bad |= tw_bmp(at("bmp", name), W, H, bpps[k], td, px, k == 0 ? grey : pal,
                          k == 0 ? 256 : 200, 0) < 0;
        }
    if (bad) fprintf(stderr, "make_seeds: some seeds could not be written under %s\n", base);
    return bad ? 1 : 0;
}
