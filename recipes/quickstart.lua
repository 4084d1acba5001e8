-- quickstart: the whole pipeline on generated defect images (no download), small enough to
-- finish in a few minutes on 2 cores. This is what `bash scripts/quickstart.sh` runs.
-- Scaled down from the paper: 64x64 images, a narrow 4-stage space, a decoder of width 32.
return {
    name = 'quickstart',
    seed = 0,
    threads = 2,
    task = 'segmentation',
    data = { kind = 'generated', n = 400, size = { 64, 64 }, classes = { 2, 4, 5 }, surface = 'mixed' },
    space = {
        name = 'quickstart',
        head_dim = 32,
        operators = { 'attention', 'conv', 'mlp' },
        drop_path = 0.1,
        stages = {
            { depth = { 1, 2 }, width = { 32 }, ratio = { 2, 4 }, sr_ratio = 4, patch_kernel = 7, patch_stride = 4 },
            { depth = { 1, 2 }, width = { 32, 64 }, ratio = { 2, 4 }, sr_ratio = 2, patch_kernel = 3, patch_stride = 2 },
            { depth = { 1, 2 }, width = { 64, 96 }, ratio = { 2, 3 }, sr_ratio = 1, patch_kernel = 3, patch_stride = 2 },
            { depth = { 1 }, width = { 96, 128 }, ratio = { 2, 3 }, sr_ratio = 1, patch_kernel = 3, patch_stride = 2 },
        },
        decoder = {
            width = 32, groups = 8,
            conv_types = { '1x1', '3x3', '5x5', 'dil3x3', 'dw3x3' },
            slots = { 'ppm1', 'ppm2', 'ppm3', 'ppm4', 'lateral3', 'lateral2', 'lateral1', 'out1', 'out2', 'out3' },
            pool_sizes = { { 1 }, { 1, 2 }, { 2, 3 }, { 3, 4 } },
        },
    },
    supernet = { epochs = 15, batch = 8, lr = 2e-3, warmup_epochs = 1, eval_every = 5 },
    prior = { kind = 'latency_log', top = 60, mix = 0.9 },
    search = { strategy = 'evolution', latency_weight = 5, params = { 0.1e6, 2e6 }, val_images = 32,
               options = { population = 8, parents = 4, mutations = 4, crossovers = 4, generations = 3,
                           warmup = 4, baseline = 4 } },
    finetune = { epochs = 8, batch = 8, lr = 5e-4, warmup_epochs = 0.5, baseline = 'largest' },
}
