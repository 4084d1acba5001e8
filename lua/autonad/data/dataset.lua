-- autonad.data.dataset: the dataset description every adapter returns, and its checks.
--   { name, root, task = 'segmentation' | 'classification', classes = {names},
--     samples = { {image, rel, mask, mask_threshold, mask_value, label, class_name}, ... },
--     splits = { train = {sample indices}, ... } (only when the layout fixes them) }
-- Class index k (a mask value or a label, 0-based as the loss wants) is named classes[k + 1];
-- for segmentation classes[1] is the background and a sample's label is its image-level
-- class (the defect type, 0 for a defect-free image), used to stratify splits.
local fs = require 'autonad.data.fs'

local M = {}
local Dataset = {}
Dataset.__index = Dataset

--- A new, empty description.
function M.new(name, root, task, classes)
    assert(task == 'segmentation' or task == 'classification', 'dataset: bad task ' .. tostring(task))
    return setmetatable({ name = name, root = root, task = task, classes = classes, samples = {},
        by_rel = {} }, Dataset)
end

function M.is_dataset(x) return getmetatable(x) == Dataset end

--- Adds a sample. s.rel is the image path relative to the root; s.image is filled from it
--- (a generated sample has a synth_index instead and no image).
--- label is the class index; class_name defaults to classes[label + 1].
function Dataset:add(s)
    if s.synth_index == nil then s.image = s.image or fs.join(self.root, s.rel) end
    s.label = s.label or 0
    s.class_name = s.class_name or self.classes[s.label + 1]
    if s.mask then
        s.mask_threshold = s.mask_threshold or -1
        s.mask_value = s.mask_value or 0
    end
    if self.by_rel[s.rel] then error(self.name .. ': ' .. s.rel .. ' listed twice', 0) end
    self.samples[#self.samples + 1] = s
    self.by_rel[s.rel] = #self.samples
    return s
end

--- The sample index of a path relative to the root, or nil.
function Dataset:index_of(rel) return self.by_rel[rel] end

function Dataset:num_classes() return #self.classes end

--- Number of samples per label: counts[k + 1] for class k.
function Dataset:class_counts(indices)
    local counts = {}
    for k = 1, #self.classes do counts[k] = 0 end
    local n = indices and #indices or #self.samples
    for i = 1, n do
        local s = self.samples[indices and indices[i] or i]
        counts[s.label + 1] = (counts[s.label + 1] or 0) + 1
    end
    return counts
end

--- A dataset holding the samples at the given indices (a split), same root and classes.
function Dataset:subset(indices, name)
    local d = M.new(name or self.name, self.root, self.task, self.classes)
    d.synth = self.synth -- generated samples keep their generator
    for _, i in ipairs(indices) do
        local s = self.samples[i]
        d.samples[#d.samples + 1] = s
        d.by_rel[s.rel] = #d.samples
    end
    return d
end

M.Dataset = Dataset
return M
