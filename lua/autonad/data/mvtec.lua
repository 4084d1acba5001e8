-- autonad.data.mvtec: one MVTec AD category: `<category>/train/good/*.png` (defect-free),
-- `test/<type>/*.png` (good or a defect type) and `ground_truth/<type>/<name>_mask.png`.
-- Labels: 0 good, k the k-th defect type (sorted); opts.binary makes every defect 1.
local fs = require 'autonad.data.fs'
local dataset = require 'autonad.data.dataset'

local M = {}

--- root is the category folder (e.g. .../mvtec/bottle). Every sample carries
--- `defective` (image-level good / defective) and `type` (the folder name); defective
--- images have their mask, good ones none (an empty mask). Splits: train and test.
function M.load(root, opts)
    opts = opts or {}
    fs.need_dir(fs.join(root, 'train/good'), 'mvtec')
    local test_dir = fs.need_dir(fs.join(root, 'test'), 'mvtec')
    local types = {}
    for _, t in ipairs(fs.list(test_dir, 'd')) do
        if t ~= 'good' then types[#types + 1] = t end
    end
    local classes = { 'good' }
    if opts.binary then classes[2] = 'defective' else
        for _, t in ipairs(types) do classes[#classes + 1] = t end
    end
    local d = dataset.new('mvtec', root, 'segmentation', classes)
    d.splits = { train = {}, test = {} }
    local function add_folder(split, sub, label, tname)
        local dir = fs.join(root, sub)
        for _, name in ipairs(fs.list_ext(dir, fs.image_exts)) do
            local mask
            if label > 0 then
                mask = fs.join(root, 'ground_truth/' .. tname .. '/' .. fs.stem(name) .. '_mask.png')
                if not fs.is_file(mask) then error('mvtec: mask ' .. mask .. ' does not exist', 0) end
            end
            d:add({ rel = sub .. '/' .. name, mask = mask, mask_threshold = 128, mask_value = label,
                label = label, class_name = (not opts.binary) and tname or nil, type = tname, defective = label > 0 })
            table.insert(d.splits[split], #d.samples)
        end
    end
    add_folder('train', 'train/good', 0, 'good')
    if fs.is_dir(fs.join(test_dir, 'good')) then add_folder('test', 'test/good', 0, 'good') end
    for k, t in ipairs(types) do add_folder('test', 'test/' .. t, opts.binary and 1 or k, t) end
    return d
end

return M
