-- msd: the paper's MSD (mobile-phone screen defects) experiment, for a large machine. MSD is
-- not in ../shared/data: point data.root at your copy in the VOC layout (JPEGImages/,
-- SegmentationClass/, ImageSets/Segmentation/{train,val,test}.txt), e.g.
--   autonad run recipes/msd.lua --set data.root=/data/MSD
-- Short side 540 (1920x1080 -> 960x540), 4 classes (background + 3 defects), decoder width
-- 256, supernet 2000 epochs at batch 8, fine-tuning 500 epochs without the extra
-- augmentation (the reference code's MSD run does not use it).
return {
    name = 'msd',
    seed = 0,
    threads = 16,
    task = 'segmentation',
    data = { kind = 'voc', root = 'MSD', size = { 540, 960 }, channels = 3, workers = 8 },
    space = 'autonad',
    supernet = { epochs = 2000, batch = 8, lr = 5e-4, min_lr = 1e-5, warmup_epochs = 20,
                 weight_decay = 0.05, augment = 'flips_rotations' },
    prior = { kind = 'latency_log', top = 300, mix = 0.9 },
    search = { strategy = 'evolution', latency_weight = 5, params = { 1e6, 10e6 },
               options = { population = 50, parents = 10, mutations = 25, crossovers = 25,
                           generations = 20, mutation_prob = 0.2, depth_prob = 0.4 } },
    finetune = { epochs = 500, batch = 8, lr = 1e-4, power = 0.9, warmup_epochs = 1, augment = 'flips_rotations' },
    eval = { split = 'test' },
}
