-- neu_seg: the paper's NEU-Seg (SD-saliency-900) experiment, for a large machine
-- (reference sections 3-6 and the reference code's run scripts): 200x200 grey images,
-- 4 classes (background, inclusion, patches, scratches), decoder width 256, supernet 800
-- epochs at batch 16 (AdamW 5e-4, 20 warm-up epochs), evolution with the paper's settings,
-- fine-tuning 500 epochs (Adam 1e-4, poly 0.9) with the extra augmentation.
return {
    name = 'neu_seg',
    seed = 0,
    threads = 16,
    task = 'segmentation',
    data = { kind = 'neu_seg', root = 'shared:neu-seg', splits = 'shared:splits/neu-seg',
             size = { 200, 200 }, channels = 1, workers = 8 },
    space = 'autonad',
    supernet = { epochs = 800, batch = 16, lr = 5e-4, min_lr = 1e-5, warmup_epochs = 20,
                 weight_decay = 0.05, augment = 'flips_rotations' },
    prior = { kind = 'latency_log', top = 300, mix = 0.9 },
    search = { strategy = 'evolution', latency_weight = 5, params = { 1e6, 10e6 },
               options = { population = 50, parents = 10, mutations = 25, crossovers = 25,
                           generations = 20, mutation_prob = 0.2, depth_prob = 0.4 } },
    finetune = { epochs = 500, batch = 8, lr = 1e-4, power = 0.9, warmup_epochs = 1, augment = 'finetune' },
    eval = { split = 'test' },
}
