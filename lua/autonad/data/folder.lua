-- autonad.data.folder: a generic classification set, one folder of images per class:
-- `<root>/<class>/<image>`. Classes are the folder names, sorted, unless opts.classes fixes
-- them (and their order: label k is opts.classes[k + 1]).
local fs = require 'autonad.data.fs'
local dataset = require 'autonad.data.dataset'

local M = {}

--- opts.classes: class folder names in label order; opts.extensions: a list such as {'bmp'}
--- (default bmp, png, jpg, jpeg); opts.name: the dataset's name; opts.who: the name errors use.
function M.load(root, opts)
    opts = opts or {}
    local who = opts.who or 'folder'
    fs.need_dir(root, who)
    local classes = opts.classes or fs.list(root, 'd')
    if #classes == 0 then error(who .. ': no class folder in ' .. root, 0) end
    local exts = fs.image_exts
    if opts.extensions then
        exts = {}
        for _, e in ipairs(opts.extensions) do exts[e:lower()] = true end
    end
    local d = dataset.new(opts.name or 'folder', root, 'classification', classes)
    for k, c in ipairs(classes) do
        local dir = fs.need_dir(fs.join(root, c), who)
        local names = fs.list_ext(dir, exts)
        if #names == 0 then error(who .. ': no image in ' .. dir, 0) end
        for _, name in ipairs(names) do d:add({ rel = c .. '/' .. name, label = k - 1 }) end
    end
    return d
end

return M
