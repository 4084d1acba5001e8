-- neu_cls: whole-image classification on NEU-CLS (6 classes, 200x200 grey) with the same
-- pipeline and search space: the searched backbone with the classification head (pooled
-- stage outputs -> linear), on a 2-core CPU in about an hour. Scaled: 128x128 input, a
-- 30-minute supernet budget, a short evolution, 10 fine-tuning epochs.
return {
    name = 'neu_cls',
    seed = 0,
    threads = 2,
    task = 'classification',
    data = { kind = 'neu_cls', root = 'shared:neu-cls', splits = 'shared:splits/neu-cls',
             size = { 128, 128 }, channels = 1, workers = 2 },
    space = 'autonad',
    space_overrides = { decoder = { width = 64 } },
    supernet = { epochs = 30, batch = 16, lr = 1e-3, min_lr = 1e-5, warmup_epochs = 1,
                 weight_decay = 0.05, augment = 'flips_rotations', time_limit = 1800, eval_every = 5 },
    prior = { kind = 'latency_log', top = 300, mix = 0.9 },
    search = { strategy = 'evolution', latency_weight = 5, params = { 1e6, 10e6 }, val_images = 180,
               options = { population = 16, parents = 6, mutations = 8, crossovers = 8,
                           generations = 5, warmup = 8, baseline = 8 } },
    finetune = { epochs = 10, batch = 16, lr = 1e-4, power = 0.9, warmup_epochs = 1, augment = 'finetune',
                 baseline = 'largest' },
    eval = { split = 'test' },
}
