-- autonad.data.loader: batches of a dataset, decoded (and augmented) on background threads by
-- core/data/loader.c. Per-epoch shuffling by seed; the time the caller waited for data is kept.
--   local L = loader.new(ds, {batch_size = 8, height = 200, width = 200, threads = 2})
--   for images, targets in L:epoch(1) do ... end   -- images [B,H,W,C], targets [B,H,W] or [B]
local ffi = require 'ffi'
local core = require 'autonad.ffi'
local tensor = require 'autonad.tensor'
local random = require 'autonad.random'
local C, check = core.C, core.check

local M = {}
local Loader = {}
Loader.__index = Loader

local defaults = { batch_size = 8, channels = 1, threads = 2, prefetch = 4, seed = 0,
    shuffle = true, drop_last = false }
local known = { batch_size = true, height = true, width = true, channels = true, threads = true,
    prefetch = true, seed = true, shuffle = true, drop_last = true, mean = true, std = true,
    task = true, augment = true }

-- the fields of nad_augment_params a Lua table may set (mean and std are lists)
local augment_fields = {}
for _, f in ipairs({ 'resize_h', 'resize_w', 'crop_h', 'crop_w', 'pad_value', 'p_hflip', 'p_vflip',
    'p_rot90', 'p_affine', 'scale_lo', 'scale_hi', 'translate', 'shear_deg', 'rotate_deg', 'fill',
    'p_contrast', 'contrast_lo', 'contrast_hi', 'p_brightness', 'brightness_lo', 'brightness_hi',
    'p_blur', 'blur_sigma_lo', 'blur_sigma_hi', 'p_sharpen', 'sharpen_lo', 'sharpen_hi', 'p_noise',
    'noise_std_lo', 'noise_std_hi', 'p_dropout', 'dropout_lo', 'dropout_hi', 'normalize' }) do
    augment_fields[f] = true
end

--- A nad_augment_params from a table of its fields ({p_hflip = 0.5, ...}; mean / std as
--- lists turn normalize on). An unknown key is an error naming it.
function M.augment_params(t, mean, std)
    local a = ffi.new('nad_augment_params')
    for k, v in pairs(t or {}) do
        if k == 'mean' or k == 'std' then
            if k == 'mean' then mean = v else std = v end
        elseif not augment_fields[k] then
            error('loader: unknown augment option "' .. tostring(k) .. '"', 3)
        else
            a[k] = type(v) == 'boolean' and (v and 1 or 0) or v
        end
    end
    if mean or std then
        a.normalize = 1
        mean = type(mean) == 'table' and mean or { mean or 0 }
        std = type(std) == 'table' and std or { std or 1 }
        for c = 0, 3 do
            a.mean[c] = mean[c + 1] or mean[#mean]
            a.std[c] = std[c + 1] or std[#std]
        end
    end
    return a
end

--- The AutoNAD supernet augmentation: flips (p 0.5 each) and 90-degree turns (p 0.75).
M.flips_rotations = { p_hflip = 0.5, p_vflip = 0.5, p_rot90 = 0.75 }

--- The epoch's order of the n samples: 0..n-1, shuffled (Fisher-Yates) by a generator
--- seeded with seed whose counter starts at epoch * 2^40, so every (seed, epoch) has its own
--- permutation. Returns a 0-based Lua list.
function M.order(n, seed, epoch, shuffle)
    local o = {}
    for i = 1, n do o[i] = i - 1 end
    if shuffle == false then return o end
    local rng = random.new(seed)
    rng.counter = ffi.new('uint64_t', epoch) * 1099511627776ULL
    for i = n, 2, -1 do
        local j = rng:randint(1, i)
        o[i], o[j] = o[j], o[i]
    end
    return o
end

--- A loader over ds (a dataset from an adapter, a generated one from data.generated, or
--- {task =, samples = {...}}). opts: batch_size, height and width (the output size;
--- default: the first image's), channels (1 or 3), threads (workers), prefetch (batches
--- ahead), seed, shuffle (default true), drop_last, augment (a table of nad_augment_params
--- fields, e.g. loader.flips_rotations), mean and std (numbers or per-channel lists: images
--- delivered as (x - mean) / std). An unknown option is an error naming it.
function M.new(ds, opts)
    opts = opts or {}
    for k in pairs(opts) do
        if not known[k] then error('loader: unknown option "' .. tostring(k) .. '"', 2) end
    end
    local o = {}
    for k, v in pairs(defaults) do o[k] = v end
    for k, v in pairs(opts) do o[k] = v end
    local samples = ds.samples
    if not samples or #samples == 0 then error('loader: the dataset has no samples', 2) end
    local task = o.task or ds.task or 'segmentation'
    if ds.synth then
        o.height, o.width = o.height or ds.synth.height, o.width or ds.synth.width
    end
    if not (o.height and o.width) then
        local h, w, c = ffi.new('int32_t[1]'), ffi.new('int32_t[1]'), ffi.new('int32_t[1]')
        check(C.nad_image_info(samples[1].image, h, w, c))
        o.height, o.width = o.height or h[0], o.width or w[0]
    end

    local n = #samples
    local arr = ffi.new('nad_loader_sample[?]', n)
    for i, s in ipairs(samples) do
        local e = arr[i - 1]
        e.image = s.image
        e.mask = s.mask
        e.mask_threshold = s.mask_threshold or -1
        e.mask_value = s.mask_value or 0
        e.label = s.label or 0
        e.synth_index = s.synth_index or 0
    end
    local p = ffi.new('nad_loader_params')
    p.batch_size, p.height, p.width, p.channels = o.batch_size, o.height, o.width, o.channels
    p.segmentation = task == 'segmentation' and 1 or 0
    p.num_threads, p.prefetch, p.drop_last = o.threads, o.prefetch, o.drop_last and 1 or 0
    p.seed = o.seed
    local aug
    if o.augment or o.mean or o.std then
        aug = M.augment_params(o.augment, o.mean, o.std)
        p.augment = aug
    end
    local synth
    if ds.synth then
        synth = ffi.new('nad_synth_params')
        synth.height, synth.width = ds.synth.height, ds.synth.width
        synth.surface, synth.class_mask = ds.synth.surface or 0, ds.synth.class_mask or 0
        p.synth, p.synth_seed = synth, ds.synth.seed or 0
    end
    -- the strings in arr are Lua's: they live in `samples` while the C side copies them;
    -- aug and synth are locals alive across the call, copied too
    local handle = C.nad_loader_new(p, n, arr)
    if handle == nil then error(ffi.string(C.nad_last_error()), 2) end
    return setmetatable({
        handle = ffi.gc(handle, C.nad_loader_free),
        opts = o, task = task, n = n,
        images = tensor.new(), targets = tensor.new(),
        wait_seconds = 0, batches = 0, -- totals over the loader's life
        order_buf = ffi.new('int32_t[?]', n),
        wait_buf = ffi.new('double[1]'),
    }, Loader)
end

--- Number of batches in one epoch.
function Loader:num_batches()
    local B = self.opts.batch_size
    return self.opts.drop_last and math.floor(self.n / B) or math.ceil(self.n / B)
end

--- Starts epoch e (any integer) with its shuffled order; returns self.
function Loader:start(e)
    local o = M.order(self.n, self.opts.seed, e, self.opts.shuffle)
    for i = 1, self.n do self.order_buf[i - 1] = o[i] end
    check(C.nad_loader_start(self.handle, e, self.n, self.order_buf))
    self.epoch_wait = 0
    return self
end

--- The next batch of the started epoch: images, targets (the loader's own tensors, reused:
--- valid until the next call), or nil at the end. A sample that failed to decode raises an
--- error naming its path; the batch after it can still be read.
function Loader:next()
    if self.handle == nil then error('loader: used after close', 2) end
    local b = C.nad_loader_next(self.handle, self.images, self.targets, self.wait_buf)
    self.wait_seconds = self.wait_seconds + self.wait_buf[0]
    self.epoch_wait = (self.epoch_wait or 0) + self.wait_buf[0]
    if b < 0 then error(ffi.string(C.nad_last_error()), 2) end
    if b == 0 then return nil end
    self.batches = self.batches + 1
    return self.images, self.targets
end

--- An iterator over the batches of epoch e: for images, targets in L:epoch(e) do ... end
function Loader:epoch(e)
    self:start(e)
    return function() return self:next() end
end

--- Seconds the caller spent waiting for data: {total =, epoch =, batches =}.
function Loader:wait_time()
    return { total = self.wait_seconds, epoch = self.epoch_wait or 0, batches = self.batches }
end

--- Stops the worker threads (even mid-epoch) and frees the loader.
function Loader:close()
    if self.handle ~= nil then
        C.nad_loader_free(ffi.gc(self.handle, nil))
        self.handle = nil
    end
end

M.Loader = Loader
return M
