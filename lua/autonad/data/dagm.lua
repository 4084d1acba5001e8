-- autonad.data.dagm: DAGM 2007: `ClassN/{Train,Test}/<id>.PNG`, defect masks (0/255 ellipses)
-- `ClassN/{Train,Test}/Label/<id>_label.PNG` listed in `Label/Labels.txt` (lines
-- "<n> <defective 0|1> <image> <0> [<mask>]", a count or header first). Each ClassN found is
-- one defect class (mask value = its index); opts.binary makes every defect class 1.
local fs = require 'autonad.data.fs'
local dataset = require 'autonad.data.dataset'

local M = {}

-- image name -> mask name (nil for a defect-free image) from Labels.txt, or nil without one
local function read_labels(label_dir)
    local path = fs.join(label_dir, 'Labels.txt')
    if not fs.is_file(path) then return nil end
    local map = {}
    for line in io.lines(path) do
        local f = {}
        for w in line:gmatch('%S+') do f[#f + 1] = w end
        if #f >= 3 then
            if f[2] ~= '0' and f[2] ~= '1' then error('dagm: ' .. path .. ': bad line "' .. line .. '"', 0) end
            map[f[3]] = f[2] == '1' and (f[5] or (fs.stem(f[3]) .. '_label.PNG')) or false
        end
    end
    return map, path
end

--- opts.classes: the ClassN folder names to read (default: every ClassN found, by N);
--- opts.binary: one 'defect' class. Splits: the Train and Test folders.
function M.load(root, opts)
    opts = opts or {}
    fs.need_dir(root, 'dagm')
    local folders = opts.classes
    if not folders then
        folders = {}
        for _, n in ipairs(fs.list(root, 'd')) do
            if n:match('^Class%d+$') then folders[#folders + 1] = n end
        end
        table.sort(folders, function(a, b) return tonumber(a:sub(6)) < tonumber(b:sub(6)) end)
        if #folders == 0 then error('dagm: no Class<N> folder in ' .. root, 0) end
    end
    local classes = { 'background' }
    if opts.binary then classes[2] = 'defect' else
        for _, c in ipairs(folders) do classes[#classes + 1] = c end
    end
    local d = dataset.new('dagm', root, 'segmentation', classes)
    d.splits = { train = {}, test = {} }
    for k, c in ipairs(folders) do
        local value = opts.binary and 1 or k
        for _, part in ipairs({ 'Train', 'Test' }) do
            local sub = c .. '/' .. part
            local dir = fs.need_dir(fs.join(root, sub), 'dagm')
            local label_dir = fs.join(dir, 'Label')
            local labels, labels_path = read_labels(label_dir)
            local names = fs.list_ext(dir, { png = true })
            local present = {}
            for _, name in ipairs(names) do
                present[name] = true
                local mask
                if labels then
                    mask = labels[name]
                    if mask == nil then error('dagm: ' .. fs.join(dir, name) .. ' is not in ' .. labels_path, 0) end
                else
                    mask = fs.stem(name) .. '_label.PNG'
                    if not fs.is_file(fs.join(label_dir, mask)) then mask = false end
                end
                if mask then
                    mask = fs.join(label_dir, mask)
                    if not fs.is_file(mask) then error('dagm: mask ' .. mask .. ' does not exist', 0) end
                end
                d:add({ rel = sub .. '/' .. name, mask = mask or nil, mask_threshold = 128,
                    mask_value = value, label = mask and value or 0,
                    class_name = mask and classes[value + 1] or (c .. ' good') })
                table.insert(d.splits[part:lower()], #d.samples)
            end
            if labels then
                for name in pairs(labels) do
                    if not present[name] then
                        error('dagm: ' .. fs.join(dir, name) .. ' (listed in ' .. labels_path .. ') does not exist', 0)
                    end
                end
            end
        end
    end
    return d
end

return M
