-- autonad.data.neu_seg: SD-saliency-900 ("NEU-Seg"): `Source Images/<P>_<n>.bmp` with the mask
-- `Ground truth/<P>_<n>.png` (0/255). The defect class comes from the prefix: In 1, Pa 2, Sc 3.
local fs = require 'autonad.data.fs'
local dataset = require 'autonad.data.dataset'

local M = {}
M.classes = { 'background', 'inclusion', 'patches', 'scratches' }
local prefix_class = { In = 1, Pa = 2, Sc = 3 }

--- The dataset at root. opts.require_masks (default true): an image without a mask is an error.
function M.load(root, opts)
    opts = opts or {}
    local img_dir = fs.need_dir(fs.join(root, 'Source Images'), 'neu_seg')
    local gt_dir = fs.need_dir(fs.join(root, 'Ground truth'), 'neu_seg')
    local d = dataset.new('neu-seg', root, 'segmentation', M.classes)
    for _, name in ipairs(fs.list_ext(img_dir, { bmp = true })) do
        local prefix = name:match('^(%a+)_')
        local label = prefix_class[prefix]
        if not label then
            error('neu_seg: ' .. fs.join(img_dir, name) .. ': name does not start with In_, Pa_ or Sc_', 0)
        end
        local mask = fs.join(gt_dir, fs.stem(name) .. '.png')
        if not fs.is_file(mask) then
            if opts.require_masks ~= false then error('neu_seg: mask ' .. mask .. ' does not exist', 0) end
            mask = nil
        end
        d:add({ rel = 'Source Images/' .. name, mask = mask, mask_threshold = 128, mask_value = label,
            label = label })
    end
    if #d.samples == 0 then error('neu_seg: no .bmp image in ' .. img_dir, 0) end
    return d
end

return M
