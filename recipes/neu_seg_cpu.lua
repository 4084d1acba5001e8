-- neu_seg_cpu: NEU-Seg end to end on a 2-core CPU in about 90 minutes. Scaled from
-- recipes/neu_seg.lua (the paper's settings) and why:
--   input 128x128 instead of 200x200      -> 2.4x fewer pixels per image
--   decoder width 64 instead of 256       -> the 5x5 decoder convs dominate at 256 (16x MACs)
--   supernet: 45 minutes (time_limit) of a 40-epoch cosine schedule instead of 800 epochs
--   search: population 20, 6 generations, candidates scored on 90 val images
--   fine-tuning: 12 epochs instead of 500
-- Everything else (space, AdamW, augmentation, prior, fitness) is the paper's.
return {
    name = 'neu_seg_cpu',
    seed = 0,
    threads = 2,
    task = 'segmentation',
    data = { kind = 'neu_seg', root = 'shared:neu-seg', splits = 'shared:splits/neu-seg',
             size = { 128, 128 }, channels = 1, workers = 2 },
    space = 'autonad',
    space_overrides = { decoder = { width = 64 } },
    supernet = { epochs = 40, batch = 8, lr = 1e-3, min_lr = 1e-5, warmup_epochs = 2,
                 weight_decay = 0.05, augment = 'flips_rotations', time_limit = 2700, eval_every = 2 },
    prior = { kind = 'latency_log', top = 300, mix = 0.9 },
    search = { strategy = 'evolution', latency_weight = 5, params = { 1e6, 10e6 }, val_images = 90,
               options = { population = 20, parents = 6, mutations = 10, crossovers = 10,
                           generations = 6, warmup = 10, baseline = 10 } },
    finetune = { epochs = 12, batch = 8, lr = 1e-4, power = 0.9, warmup_epochs = 1, augment = 'finetune',
                 baseline = 'largest' },
    eval = { split = 'test' },
}
