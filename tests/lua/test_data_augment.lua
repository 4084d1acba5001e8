-- test_data_augment.lua: autonad.data.augment (recipe tables -> the C pipeline) and
-- autonad.data.synth (the generated defect data set) through the FFI.
local autonad = require 'autonad'
local augment = require 'autonad.data.augment'
local synth = require 'autonad.data.synth'
local T = require 'testing'

local tests = {}

local function ramp(h, w)
    local img, mask = autonad.tensor(h, w, 1), autonad.tensor(h, w)
    for r = 1, h do
        for c = 1, w do
            img:set(((r - 1) * w + c) / (h * w), r, c, 1)
            mask:set((r + c) % 3, r, c)
        end
    end
    return img, mask
end

function tests.recipe_fills_the_c_struct()
    local p = augment.params {
        resize = { 20, 30 }, crop = 16, hflip = 0.5, rot90 = 0.75,
        affine = { p = 0.8, scale = { 0.8, 1.2 }, translate = 0.1, shear = 8 },
        noise = { std = 0.02 }, dropout = { p = 0.3, rate = { 0.01, 0.05 } },
        normalize = { mean = { 0.5 }, std = { 0.25 } },
    }
    T.eq(p.resize_h, 20); T.eq(p.resize_w, 30); T.eq(p.crop_h, 16); T.eq(p.crop_w, 16)
    T.near(p.p_hflip, 0.5); T.eq(p.p_vflip, 0); T.near(p.p_rot90, 0.75)
    T.near(p.p_affine, 0.8); T.near(p.scale_lo, 0.8); T.near(p.scale_hi, 1.2, 1e-6)
    T.near(p.shear_deg, 8); T.eq(p.p_noise, 1); T.eq(p.noise_std_lo, 0); T.near(p.noise_std_hi, 0.02)
    T.near(p.dropout_hi, 0.05); T.eq(p.normalize, 1); T.near(p.std[0], 0.25)
end

function tests.unknown_keys_and_bad_values_name_the_key()
    T.errors(function() augment.params { hflp = 0.5 } end, 'augment: unknown key hflp (expected one of affine,')
end

function tests.unknown_nested_key_names_its_path()
    T.errors(function() augment.params { affine = { shaer = 8 } } end, 'augment: unknown key affine.shaer')
    T.errors(function() augment.params { hflip = 2 } end, 'augment: hflip must be a number in [0, 1]')
    T.errors(function() augment.params { blur = { p = 0.5 } } end, 'augment: blur.sigma must be given')
    T.errors(function() augment.new('nope') end, 'augment: no preset nope')
end

function tests.apply_is_reproducible_and_keeps_mask_labels()
    local img, mask = ramp(12, 12)
    local aug = augment.new('finetune')
    local a1, m1 = aug:apply(autonad.rng(5), img, mask)
    local a2, m2 = aug:apply(autonad.rng(5), img, mask)
    T.all_near(a1, a2, 0); T.all_near(m1, m2, 0)
    for _, v in ipairs(m1:tolist()) do T.ok(v == 0 or v == 1 or v == 2 or v == 255, 'mask value ' .. v) end
    local img_only = aug:apply(autonad.rng(5), img)
    T.eq(img_only:size(1), 12)
end

function tests.hflip_with_probability_one_mirrors_columns()
    local img, mask = ramp(3, 4)
    local out, mout = augment.new({ hflip = 1 }):apply(autonad.rng(0), img, mask)
    for r = 1, 3 do
        for c = 1, 4 do
            T.eq(out:get(r, c, 1), img:get(r, 5 - c, 1))
            T.eq(mout:get(r, c), mask:get(r, 5 - c))
        end
    end
end

function tests.synth_dataset_is_deterministic_and_balanced()
    local ds = synth.dataset { n = 12, size = { 24, 32 }, seed = 3, classes = { 'none', 'pit', 'crack' } }
    T.eq(ds:count(), 12)
    T.eq(ds.num_classes, 3)
    T.eq(ds.class_names[2], 'pit'); T.eq(ds.class_names[3], 'crack')
    local counts = { [0] = 0, 0, 0 }
    for i = 1, 12 do
        local img, mask, label = ds:get(i)
        T.eq(img:size(1), 24); T.eq(img:size(2), 32); T.eq(img:size(3), 1)
        counts[label] = counts[label] + 1
        if label == 0 then T.eq(mask:sum(), 0) else T.ok(mask:sum() > 0, 'empty mask') end
    end
    T.eq(counts[0], 4); T.eq(counts[1], 4); T.eq(counts[2], 4)
    local again = synth.dataset { n = 12, size = { 24, 32 }, seed = 3, classes = { 'none', 'pit', 'crack' } }
    local a = ds:get(7)
    local b = again:get(7)
    T.all_near(a, b, 0)
end

function tests.synth_dataset_rejects_bad_options()
    T.errors(function() synth.dataset { n = 3, colours = 2 } end, 'synth.dataset: unknown key colours')
    T.errors(function() synth.dataset { n = 3, classes = { 'dent' } } end, 'unknown class dent')
    T.errors(function() synth.dataset { n = 3, size = 4 } end, 'synth_sample: size 4x4 is below 8x8')
    local ds = synth.dataset { n = 2, size = 8 }
    T.errors(function() ds:get(3) end, 'index 3 is outside 1..2')
end

return tests
