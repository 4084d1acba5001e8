-- autonad.data.synth: a data set of generated defect images (core/data/synth.c), the
-- embedded default data set and the tests' data. Sample i depends only on (seed, i).
--   local ds = synth.dataset{ n = 300, size = 64, seed = 1, classes = { 'scratch', 'pit' } }
--   local img, mask, label = ds:get(1)     -- img [H,W,1] in [0,1], mask [H,W], label 0..m
-- Classes: 'none' (a defect-free sample, label 0), 'scratch', 'pit', 'crack', 'patch',
-- 'inclusion'. Labels and mask values number the chosen defect classes 1..m in that order
-- (background and defect-free are 0); ds.class_names[k + 1] names label k.
local ffi = require 'ffi'
local bit = require 'bit'
local core = require 'autonad.ffi'
local tensor = require 'autonad.tensor'
local workspace = require 'autonad.workspace'
local C, check = core.C, core.check

local M = {}

M.class_ids = { none = 0, scratch = 1, pit = 2, crack = 3, patch = 4, inclusion = 5 }
M.all_defects = { 'scratch', 'pit', 'crack', 'patch', 'inclusion' }
local surfaces = { steel = C.NAD_SYNTH_STEEL, tile = C.NAD_SYNTH_TILE, mixed = C.NAD_SYNTH_MIXED }
local known = { n = true, size = true, seed = true, classes = true, surface = true }

local Dataset = {}
Dataset.__index = Dataset

local function fail(msg) error('synth.dataset: ' .. msg, 3) end

--- A data set: n samples (required), size (n or {h, w}, default 64), seed (default 0),
--- classes (names, default all five defects), surface ('steel', 'tile', 'mixed').
function M.dataset(opts)
    if type(opts) ~= 'table' then fail('takes a table of options') end
    for k in pairs(opts) do
        if not known[k] then fail('unknown key ' .. tostring(k) .. ' (expected n, size, seed, classes, surface)') end
    end
    local n = opts.n
    if type(n) ~= 'number' or n < 1 or n % 1 ~= 0 then fail('n must be a positive integer, got ' .. tostring(n)) end
    local size = opts.size or 64
    if type(size) == 'number' then size = { size, size } end
    if type(size) ~= 'table' or type(size[1]) ~= 'number' or type(size[2]) ~= 'number' then
        fail('size must be a number or {h, w}')
    end
    local seed = opts.seed or 0
    if type(seed) ~= 'number' or seed < 0 or seed % 1 ~= 0 then fail('seed must be a non-negative integer') end
    local surface = surfaces[opts.surface or 'mixed']
    if not surface then fail('surface must be steel, tile or mixed, got ' .. tostring(opts.surface)) end
    local classes = opts.classes or M.all_defects
    local mask_bits = 0
    for _, name in ipairs(classes) do
        local id = M.class_ids[name]
        if not id then fail('unknown class ' .. tostring(name) .. ' (expected none, scratch, pit, crack, patch, inclusion)') end
        mask_bits = bit.bor(mask_bits, bit.lshift(1, id))
    end
    if mask_bits == 0 then fail('classes is empty') end
    local names = { 'background' }
    for _, name in ipairs({ 'scratch', 'pit', 'crack', 'patch', 'inclusion' }) do
        if bit.band(mask_bits, bit.lshift(1, M.class_ids[name])) ~= 0 then names[#names + 1] = name end
    end
    local p = ffi.new('nad_synth_params', size[1], size[2], surface, mask_bits)
    local self = setmetatable({ n = n, seed = seed, params = p, class_names = names,
        num_classes = #names, ws = workspace.new(0), label_buf = ffi.new('int32_t[1]') }, Dataset)
    -- fail early on a bad size rather than at the first get
    self:get(1)
    return self
end

function Dataset:count() return self.n end

--- Sample i (1-based): image [H,W,1], mask [H,W], label. img / mask are filled when given.
function Dataset:get(i, img, mask)
    if type(i) ~= 'number' or i < 1 or i > self.n or i % 1 ~= 0 then
        error('synth.dataset: index ' .. tostring(i) .. ' is outside 1..' .. self.n, 2)
    end
    img, mask = img or tensor.new(), mask or tensor.new()
    check(C.nad_synth_sample(self.ws, self.params, self.seed, i - 1, img, mask, self.label_buf))
    return img, mask, self.label_buf[0]
end

return M
