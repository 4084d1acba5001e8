-- autonad.data.voc: a PASCAL VOC style segmentation set: `JPEGImages/<id>.jpg`,
-- `SegmentationClass/<id>.png` (class-index masks, 255 = ignore) and the fixed splits
-- `ImageSets/Segmentation/{train,val,test}.txt` (one id a line).
local fs = require 'autonad.data.fs'
local dataset = require 'autonad.data.dataset'

local M = {}
M.classes = { 'background', 'aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat',
    'chair', 'cow', 'diningtable', 'dog', 'horse', 'motorbike', 'person', 'pottedplant', 'sheep',
    'sofa', 'train', 'tvmonitor' }

--- opts.classes: other class names (index order, background first). Samples are the ids of
--- the split files present; a listed id without its image is an error naming the path, and
--- one without its mask is an error too except in the test split.
function M.load(root, opts)
    opts = opts or {}
    local img_dir = fs.need_dir(fs.join(root, 'JPEGImages'), 'voc')
    local mask_dir = fs.need_dir(fs.join(root, 'SegmentationClass'), 'voc')
    local sets_dir = fs.need_dir(fs.join(root, 'ImageSets/Segmentation'), 'voc')
    local d = dataset.new('voc', root, 'segmentation', opts.classes or M.classes)
    d.splits = {}
    local found = false
    for _, split in ipairs({ 'train', 'val', 'test' }) do
        local list = fs.join(sets_dir, split .. '.txt')
        if fs.is_file(list) then
            found = true
            local idx = {}
            for line in io.lines(list) do
                local id = line:match('^%s*(%S+)')
                if id then
                    local rel = 'JPEGImages/' .. id .. '.jpg'
                    local i = d:index_of(rel)
                    if not i then
                        local image = fs.join(root, rel)
                        if not fs.is_file(image) then
                            error('voc: ' .. image .. ' (listed in ' .. list .. ') does not exist', 0)
                        end
                        local mask = fs.join(mask_dir, id .. '.png')
                        if not fs.is_file(mask) then
                            if split ~= 'test' then
                                error('voc: mask ' .. mask .. ' (listed in ' .. list .. ') does not exist', 0)
                            end
                            mask = nil
                        end
                        d:add({ rel = rel, mask = mask, mask_threshold = -1, mask_value = 0, label = 0,
                            class_name = 'image' })
                        i = #d.samples
                    end
                    idx[#idx + 1] = i
                end
            end
            d.splits[split] = idx
        end
    end
    if not found then error('voc: no train.txt, val.txt or test.txt in ' .. sets_dir, 0) end
    return d
end

return M
