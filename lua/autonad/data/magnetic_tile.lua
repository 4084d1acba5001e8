-- autonad.data.magnetic_tile: the Magnetic-Tile defect set: `MT_<Class>/Imgs/<name>.jpg` with its
-- mask `<name>.png` beside it (anti-aliased 0/255: threshold 128). Classes Blowhole 1, Break 2,
-- Crack 3, Fray 4, Uneven 5; `MT_Free` (defect-free, empty masks) only with opts.include_free.
local fs = require 'autonad.data.fs'
local dataset = require 'autonad.data.dataset'

local M = {}
M.classes = { 'background', 'Blowhole', 'Break', 'Crack', 'Fray', 'Uneven' }

--- The dataset at root. opts.include_free adds MT_Free's images (label 0, empty masks).
function M.load(root, opts)
    opts = opts or {}
    fs.need_dir(root, 'magnetic_tile')
    local d = dataset.new('magnetic-tile', root, 'segmentation', M.classes)
    local folders = {}
    for k = 2, #M.classes do folders[#folders + 1] = { M.classes[k], k - 1 } end
    if opts.include_free then folders[#folders + 1] = { 'Free', 0 } end
    for _, f in ipairs(folders) do
        local sub = 'MT_' .. f[1] .. '/Imgs'
        local dir = fs.need_dir(fs.join(root, sub), 'magnetic_tile')
        for _, name in ipairs(fs.list_ext(dir, { jpg = true, jpeg = true })) do
            local mask = fs.join(dir, fs.stem(name) .. '.png')
            if not fs.is_file(mask) then error('magnetic_tile: mask ' .. mask .. ' does not exist', 0) end
            d:add({ rel = sub .. '/' .. name, mask = mask, mask_threshold = 128, mask_value = f[2],
                label = f[2], class_name = f[2] == 0 and 'Free' or nil })
        end
    end
    return d
end

return M
