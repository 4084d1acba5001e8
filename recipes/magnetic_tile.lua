-- magnetic_tile: the paper's Magnetic-Tile experiment, for a large machine: images resized to
-- 320x320, 6 classes (background + Blowhole, Break, Crack, Fray, Uneven), decoder width 256,
-- supernet 3000 epochs at batch 8 (AdamW 5e-4, 20 warm-up epochs), evolution with the
-- paper's settings, fine-tuning 500 epochs with the extra augmentation.
return {
    name = 'magnetic_tile',
    seed = 0,
    threads = 16,
    task = 'segmentation',
    data = { kind = 'magnetic_tile', root = 'shared:magnetic-tile', splits = 'shared:splits/magnetic-tile',
             size = { 320, 320 }, channels = 1, workers = 8 },
    space = 'autonad',
    supernet = { epochs = 3000, batch = 8, lr = 5e-4, min_lr = 1e-5, warmup_epochs = 20,
                 weight_decay = 0.05, augment = 'flips_rotations' },
    prior = { kind = 'latency_log', top = 300, mix = 0.9 },
    search = { strategy = 'evolution', latency_weight = 5, params = { 1e6, 10e6 },
               options = { population = 50, parents = 10, mutations = 25, crossovers = 25,
                           generations = 20, mutation_prob = 0.2, depth_prob = 0.4 } },
    finetune = { epochs = 500, batch = 8, lr = 1e-4, power = 0.9, warmup_epochs = 1, augment = 'finetune' },
    eval = { split = 'test' },
}
