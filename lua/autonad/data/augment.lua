-- autonad.data.augment: joint image/mask augmentation from a recipe-style table. Builds the
-- C nad_augment_params (core/data/augment.c) once and applies the pipeline per sample; the
-- data loader and recipes use it. Unknown keys and values of the wrong kind are errors.
--   local aug = augment.new{ hflip = 0.5, vflip = 0.5, rot90 = 0.75,
--                            affine = { p = 0.8, scale = { 0.8, 1.2 }, translate = 0.1, shear = 8 } }
--   local img2, mask2 = aug:apply(rng, img, mask)
local ffi = require 'ffi'
local core = require 'autonad.ffi'
local tensor = require 'autonad.tensor'
local workspace = require 'autonad.workspace'
local C, check = core.C, core.check

local M = {}

-- The recipe keys: top-level steps, and the keys each table-valued step accepts.
local step_keys = {
    affine = { p = true, scale = true, translate = true, shear = true, rotate = true, fill = true },
    contrast = { p = true, range = true },
    brightness = { p = true, range = true },
    blur = { p = true, sigma = true },
    sharpen = { p = true, amount = true },
    noise = { p = true, std = true },
    dropout = { p = true, rate = true },
    normalize = { mean = true, std = true },
}
local top_keys = { resize = true, crop = true, pad_value = true, hflip = true, vflip = true,
    rot90 = true }
for k in pairs(step_keys) do top_keys[k] = true end

--- Recipes of the paper (reference sections 3 and 6): supernet training uses flips and
--- 90/180/270 rotations; fine-tuning adds affine and photometric steps.
M.presets = {
    supernet = { hflip = 0.5, vflip = 0.5, rot90 = 0.75 },
    finetune = {
        hflip = 0.5, vflip = 0.5, rot90 = 0.75,
        affine = { p = 0.8, scale = { 0.8, 1.2 }, translate = 0.1, shear = 8 },
        contrast = { p = 0.3, range = { 0.75, 1.25 } },
        blur = { p = 0.2, sigma = { 0.5, 1.0 } },
        sharpen = { p = 0.2, amount = { 0.2, 0.8 } },
        dropout = { p = 0.2, rate = { 0.0, 0.03 } },
    },
}

local function bad(key, what, v)
    error('augment: ' .. key .. ' must be ' .. what .. ', got ' .. tostring(v), 4)
end

local function number(key, v, lo, hi)
    if type(v) ~= 'number' or v ~= v or (lo and v < lo) or (hi and v > hi) then
        bad(key, 'a number' .. (lo and (' in [' .. lo .. ', ' .. (hi or 'inf') .. ']') or ''), v)
    end
    return v
end

-- {lo, hi} or a single number x meaning {lo_default, x} (as noise = 0.02 is {0, 0.02})
local function range(key, v, single_lo)
    if type(v) == 'number' then return single_lo or v, v end
    if type(v) ~= 'table' or #v ~= 2 or type(v[1]) ~= 'number' or type(v[2]) ~= 'number'
        or v[1] > v[2] then
        bad(key, 'a number or a pair {lo, hi} with lo <= hi', type(v) == 'table' and '{...}' or v)
    end
    return v[1], v[2]
end

-- {h, w} or a number n meaning {n, n}
local function size2(key, v)
    if type(v) == 'number' then v = { v, v } end
    if type(v) ~= 'table' or #v ~= 2 then bad(key, 'a size n or {h, w}', v) end
    for i = 1, 2 do
        if type(v[i]) ~= 'number' or v[i] < 1 or v[i] % 1 ~= 0 then bad(key, 'positive integers', v[i]) end
    end
    return v[1], v[2]
end

local function check_keys(tbl, allowed, prefix)
    for k in pairs(tbl) do
        if not allowed[k] then
            local names = {}
            for n in pairs(allowed) do names[#names + 1] = n end
            table.sort(names)
            error('augment: unknown key ' .. prefix .. tostring(k) .. ' (expected one of ' ..
                table.concat(names, ', ') .. ')', 3)
        end
    end
end

local function step(recipe, name)
    local s = recipe[name]
    if s == nil then return nil end
    if type(s) ~= 'table' then bad(name, 'a table', s) end
    check_keys(s, step_keys[name], name .. '.')
    return s
end

--- The C parameter struct (a nad_augment_params cdata) for a recipe table.
function M.params(recipe)
    recipe = recipe or {}
    if type(recipe) ~= 'table' then error('augment: the recipe must be a table', 2) end
    check_keys(recipe, top_keys, '')
    local p = ffi.new('nad_augment_params')
    if recipe.resize ~= nil then p.resize_h, p.resize_w = size2('resize', recipe.resize) end
    if recipe.crop ~= nil then p.crop_h, p.crop_w = size2('crop', recipe.crop) end
    if recipe.pad_value ~= nil then p.pad_value = number('pad_value', recipe.pad_value) end
    if recipe.hflip ~= nil then p.p_hflip = number('hflip', recipe.hflip, 0, 1) end
    if recipe.vflip ~= nil then p.p_vflip = number('vflip', recipe.vflip, 0, 1) end
    if recipe.rot90 ~= nil then p.p_rot90 = number('rot90', recipe.rot90, 0, 1) end
    local a = step(recipe, 'affine')
    if a then
        p.p_affine = number('affine.p', a.p == nil and 1 or a.p, 0, 1)
        if a.scale ~= nil then p.scale_lo, p.scale_hi = range('affine.scale', a.scale) end
        if a.translate ~= nil then p.translate = number('affine.translate', a.translate, 0, 1) end
        if a.shear ~= nil then p.shear_deg = number('affine.shear', a.shear, 0, 79) end
        if a.rotate ~= nil then p.rotate_deg = number('affine.rotate', a.rotate, 0, 180) end
        if a.fill ~= nil then p.fill = number('affine.fill', a.fill) end
    end
    -- photometric steps: name, C prefix, key of the range, lower end of a single number
    for _, d in ipairs({ { 'contrast', 'contrast', 'range' }, { 'brightness', 'brightness', 'range' },
        { 'blur', 'blur_sigma', 'sigma' }, { 'sharpen', 'sharpen', 'amount', 0 },
        { 'noise', 'noise_std', 'std', 0 }, { 'dropout', 'dropout', 'rate', 0 } }) do
        local s = step(recipe, d[1])
        if s then
            p['p_' .. d[1]] = number(d[1] .. '.p', s.p == nil and 1 or s.p, 0, 1)
            if s[d[3]] == nil then bad(d[1] .. '.' .. d[3], 'given', nil) end
            p[d[2] .. '_lo'], p[d[2] .. '_hi'] = range(d[1] .. '.' .. d[3], s[d[3]], d[4])
        end
    end
    local n = step(recipe, 'normalize')
    if n then
        if type(n.mean) ~= 'table' or type(n.std) ~= 'table' or #n.mean ~= #n.std or #n.mean < 1
            or #n.mean > 4 then
            bad('normalize', '{mean = {...}, std = {...}} with 1 to 4 values each', '?')
        end
        p.normalize = 1
        for i = 1, #n.mean do
            p.mean[i - 1] = number('normalize.mean', n.mean[i])
            p.std[i - 1] = number('normalize.std', n.std[i])
        end
    end
    return p
end

local Augment = {}
Augment.__index = Augment

--- An augmentation pipeline from a recipe table (or a preset's name: 'supernet', 'finetune').
function M.new(recipe)
    if type(recipe) == 'string' then
        recipe = M.presets[recipe] or error('augment: no preset ' .. recipe, 2)
    end
    return setmetatable({ params = M.params(recipe), ws = workspace.new(0) }, Augment)
end

--- Applies the pipeline to img [H,W,C] and mask [H,W] (or nil) with draws from rng.
--- Outputs go into img_out / mask_out (new tensors when not given; they may be img / mask).
function Augment:apply(rng, img, mask, img_out, mask_out)
    img_out = img_out or tensor.new()
    if mask ~= nil then mask_out = mask_out or tensor.new() else mask_out = nil end
    check(C.nad_augment_apply(self.ws, rng, self.params, img, mask, img_out, mask_out))
    return img_out, mask_out
end

return M
