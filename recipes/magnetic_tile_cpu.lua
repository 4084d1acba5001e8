-- magnetic_tile_cpu: Magnetic-Tile end to end on a 2-core CPU in about 90 minutes. Scaled from
-- recipes/magnetic_tile.lua (the paper's settings) and why:
--   input 160x160 instead of 320x320     -> 4x fewer pixels (the tiles are ~100-630 px)
--   decoder width 64 instead of 256      -> the 5x5 decoder convs dominate at 256
--   supernet: a 150-epoch cosine schedule (about 45 minutes here; time_limit stops it there)
--             instead of 3000 epochs. 60 epochs (17 minutes) left every subnet predicting
--             background only: Magnetic-Tile's defects are small and faint, and the loss falls
--             below the class prior's entropy only after about 30 epochs
--   search: population 20, 6 generations, candidates scored on the 78 val images
--   fine-tuning: 15 epochs instead of 500
return {
    name = 'magnetic_tile_cpu',
    seed = 0,
    threads = 2,
    task = 'segmentation',
    data = { kind = 'magnetic_tile', root = 'shared:magnetic-tile', splits = 'shared:splits/magnetic-tile',
             size = { 160, 160 }, channels = 1, workers = 2 },
    space = 'autonad',
    space_overrides = { decoder = { width = 64 } },
    supernet = { epochs = 150, batch = 8, lr = 1e-3, min_lr = 1e-5, warmup_epochs = 3,
                 weight_decay = 0.05, augment = 'flips_rotations', time_limit = 2700, eval_every = 5 },
    prior = { kind = 'latency_log', top = 300, mix = 0.9 },
    search = { strategy = 'evolution', latency_weight = 5, params = { 1e6, 10e6 },
               options = { population = 20, parents = 6, mutations = 10, crossovers = 10,
                           generations = 6, warmup = 10, baseline = 10 } },
    finetune = { epochs = 15, batch = 8, lr = 1e-4, power = 0.9, warmup_epochs = 1, augment = 'finetune',
                 baseline = 'largest' },
    eval = { split = 'test' },
}
