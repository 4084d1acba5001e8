-- autonad.data.generated: a dataset of generated defect images (core/data/synth.c), read
-- through the same batch loader as files: samples carry a generator index instead of a path.
local dataset = require 'autonad.data.dataset'

local M = {}
M.class_names = { 'defect-free', 'scratch', 'pit', 'crack', 'patch', 'inclusion' }
local surfaces = { steel = 0, tile = 1, mixed = 2 }

--- opts: n (samples), height, width, surface ('steel', 'tile', 'mixed'), classes (a list of
--- class ids 0..5 to draw, 0 = defect-free; default 1..5), seed, task ('segmentation' or
--- 'classification'), first (index of the first sample, default 0: sets with other first
--- indices and the same seed do not overlap). Labels follow synth.c: the rank of the class
--- among the selected defect classes, 0 for defect-free.
function M.load(opts)
    opts = opts or {}
    local n = opts.n or error('generated: opts.n (number of samples) is required', 2)
    local ids = opts.classes or { 1, 2, 3, 4, 5 }
    local mask, sel = 0, {}
    for _, k in ipairs(ids) do
        if k ~= math.floor(k) or k < 0 or k > 5 then error('generated: class id ' .. tostring(k) .. ' is outside 0..5', 2) end
        if not sel[k] then mask = mask + 2 ^ k end
        sel[k] = true
    end
    local list, classes = {}, { 'background' }
    for k = 0, 5 do
        if sel[k] then list[#list + 1] = k end
        if k > 0 and sel[k] then classes[#classes + 1] = M.class_names[k + 1] end
    end
    if opts.task == 'classification' and sel[0] then classes[1] = 'defect-free' end
    local surface = surfaces[opts.surface or 'mixed']
    if not surface then error('generated: surface must be steel, tile or mixed', 2) end
    local d = dataset.new('generated', '(generated)', opts.task or 'segmentation', classes)
    d.synth = { height = opts.height or 64, width = opts.width or 64, surface = surface,
        class_mask = mask, seed = opts.seed or 0 }
    local first = opts.first or 0
    for i = 0, n - 1 do
        local index = first + i
        local cls = list[index % #list + 1]
        local rank = 0
        for k = 1, cls do if sel[k] then rank = rank + 1 end end
        d:add({ rel = 'generated/' .. index, synth_index = index, label = rank,
            class_name = M.class_names[cls + 1] })
    end
    return d
end

return M
