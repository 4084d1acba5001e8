-- autonad.data.info: what `autonad data info` prints about a dataset: samples per class and
-- split, image sizes, mask pixels per class, unreadable files, images without masks and
-- byte-identical duplicates. info(path_or_dataset, opts) prints the report and returns it.
local ffi = require 'ffi'
local bit = require 'bit'
local core = require 'autonad.ffi'
local tensor = require 'autonad.tensor'
local fs = require 'autonad.data.fs'
local dataset = require 'autonad.data.dataset'
local split = require 'autonad.data.split'
local C = core.C

local M = {}

--- The adapter name for the layout at root (nil when nothing fits).
function M.detect(root)
    if fs.is_dir(fs.join(root, 'Source Images')) and fs.is_dir(fs.join(root, 'Ground truth')) then
        return 'neu_seg'
    end
    if fs.is_dir(fs.join(root, 'JPEGImages')) and fs.is_dir(fs.join(root, 'SegmentationClass')) then
        return 'voc'
    end
    if fs.is_dir(fs.join(root, 'train/good')) and fs.is_dir(fs.join(root, 'test')) then return 'mvtec' end
    local dirs = fs.list(root, 'd')
    local mt, dagm, set = 0, 0, {}
    for _, d in ipairs(dirs) do
        if d:match('^MT_') then mt = mt + 1 end
        if d:match('^Class%d+$') then dagm = dagm + 1 end
        set[d] = true
    end
    if mt > 0 then return 'magnetic_tile' end
    if dagm > 0 then return 'dagm' end
    local neu = true
    for _, c in ipairs(require('autonad.data.neu_cls').classes) do neu = neu and set[c] end
    if neu then return 'neu_cls' end
    if #dirs > 0 then return 'folder' end
    return nil
end

-- the split files of the shared layout: <root>/../splits/<folder name>.<split>.txt
local function find_split_prefix(root)
    local base = root:gsub('/+$', ''):match('([^/]+)$')
    if not base then return nil end
    local prefix = fs.join(root, '../splits/' .. base)
    for _, s in ipairs({ 'train', 'val', 'test' }) do
        if fs.is_file(prefix .. '.' .. s .. '.txt') then return prefix end
    end
end

-- A 32-bit hash of a string (4 bytes at a time); equal hashes are confirmed byte by byte.
local function hash(s)
    local n = #s
    local p = ffi.cast('const uint8_t *', s)
    local h = 2166136261
    local words = math.floor(n / 4)
    local w = ffi.cast('const uint32_t *', p)
    for i = 0, words - 1 do
        h = bit.bxor(h, w[i])
        h = bit.tobit(bit.lshift(h, 24) + h * 403) -- h * 16777619 mod 2^32, exactly
        h = bit.bxor(h, bit.rshift(h, 15))
    end
    for i = words * 4, n - 1 do
        h = bit.bxor(h, p[i])
        h = bit.tobit(bit.lshift(h, 24) + h * 403)
    end
    return h
end

--- Groups of byte-identical files among paths (a list), each group a sorted list of paths.
function M.duplicates(paths)
    local by_size = {}
    for _, p in ipairs(paths) do
        local n = fs.size(p)
        if n then
            by_size[n] = by_size[n] or {}
            table.insert(by_size[n], p)
        end
    end
    local groups = {}
    for _, same in pairs(by_size) do
        if #same > 1 then
            local by_hash = {}
            for _, p in ipairs(same) do
                local s = fs.read(p)
                if s then
                    local h = hash(s)
                    by_hash[h] = by_hash[h] or {}
                    table.insert(by_hash[h], p)
                end
            end
            for _, cand in pairs(by_hash) do
                if #cand > 1 then
                    -- confirm by content: the hash only narrows the candidates
                    local by_content = {}
                    for _, p in ipairs(cand) do
                        local s = fs.read(p)
                        by_content[s] = by_content[s] or {}
                        table.insert(by_content[s], p)
                    end
                    for _, g in pairs(by_content) do
                        if #g > 1 then table.sort(g); groups[#groups + 1] = g end
                    end
                end
            end
        end
    end
    table.sort(groups, function(a, b) return a[1] < b[1] end)
    return groups
end

local function resolve(x, opts)
    if dataset.is_dataset(x) then return x end
    if type(x) ~= 'string' then error('data info: expected a dataset or a folder, got ' .. type(x), 3) end
    fs.need_dir(x, 'data info')
    local kind = opts.kind or M.detect(x)
    if not kind then error('data info: ' .. x .. ' is not a known dataset layout', 3) end
    return require('autonad.data').load(kind, x, opts.adapter)
end

local function group_digits(n)
    local s = tostring(n)
    local out = s:reverse():gsub('(%d%d%d)', '%1,'):reverse()
    return (out:gsub('^,', ''))
end

--- Collects (and prints, unless opts.quiet) the report on a dataset or a dataset folder.
--- opts: kind (adapter name; detected when absent), adapter (its options), splits (split
--- file prefix or {train = path, ...}; found beside the shared layout when absent),
--- masks (false: skip the mask histogram), out (a file, default io.stdout).
function M.info(x, opts)
    opts = opts or {}
    local ds = resolve(x, opts)
    local out = opts.out or io.stdout
    local function say(...) if not opts.quiet then out:write(string.format(...), '\n') end end

    local r = { name = ds.name, root = ds.root, task = ds.task, classes = ds.classes,
        samples = #ds.samples, unreadable = {}, without_mask = {}, duplicates = {} }

    -- splits
    local splits = ds.splits
    if not splits then
        local prefix = opts.splits or (type(x) == 'string' and find_split_prefix(ds.root))
        if prefix then splits = split.from_files(ds, prefix) end
    end
    r.splits = splits
    local split_names = {}
    if splits then
        for _, s in ipairs({ 'train', 'val', 'test' }) do if splits[s] then split_names[#split_names + 1] = s end end
        for s in pairs(splits) do
            if s ~= 'train' and s ~= 'val' and s ~= 'test' then split_names[#split_names + 1] = s end
        end
    end
    r.counts = { total = ds:class_counts() }
    for _, s in ipairs(split_names) do r.counts[s] = ds:class_counts(splits[s]) end

    say('%s at %s: %s, %d samples, %d classes', ds.name, ds.root, ds.task, #ds.samples, #ds.classes)
    local head = string.format('%-18s %7s', 'class', 'total')
    for _, s in ipairs(split_names) do head = head .. string.format(' %7s', s) end
    say('%s', head)
    for k, c in ipairs(ds.classes) do
        local line = string.format('%-18s %7d', k - 1 .. ' ' .. c, r.counts.total[k])
        for _, s in ipairs(split_names) do line = line .. string.format(' %7d', r.counts[s][k]) end
        say('%s', line)
    end
    if #split_names > 0 then
        local line = string.format('%-18s %7d', 'all', #ds.samples)
        for _, s in ipairs(split_names) do line = line .. string.format(' %7d', #splits[s]) end
        say('%s', line)
    end

    -- image sizes, and every image decoded once (a header can be fine and the pixels not)
    local h, w, c = ffi.new('int32_t[1]'), ffi.new('int32_t[1]'), ffi.new('int32_t[1]')
    local img, mask = tensor.new(), tensor.new()
    local sizes, channels = {}, {}
    local min_h, min_w, max_h, max_w = math.huge, math.huge, 0, 0
    local hist = {}
    local function unreadable(path)
        r.unreadable[#r.unreadable + 1] = { path = path, message = ffi.string(C.nad_last_error()) }
    end
    if ds.synth then error('data info: ' .. ds.name .. ' is generated: there are no files to check', 2) end
    for _, s in ipairs(ds.samples) do
        if C.nad_image_info(s.image, h, w, c) ~= 0 or C.nad_image_load(s.image, 1, img) ~= 0 then
            unreadable(s.image)
        else
            local key = h[0] .. 'x' .. w[0]
            sizes[key] = (sizes[key] or 0) + 1
            channels[c[0]] = (channels[c[0]] or 0) + 1
            min_h, min_w = math.min(min_h, h[0]), math.min(min_w, w[0])
            max_h, max_w = math.max(max_h, h[0]), math.max(max_w, w[0])
        end
        if ds.task == 'segmentation' then
            if not s.mask then
                r.without_mask[#r.without_mask + 1] = s.image
            elseif opts.masks ~= false then
                if C.nad_mask_load(s.mask, s.mask_threshold, s.mask_value, mask) ~= 0 then
                    unreadable(s.mask)
                else
                    local d, n = C.nad_tensor_data(mask), mask:numel()
                    for i = 0, n - 1 do
                        local v = d[i]
                        hist[v] = (hist[v] or 0) + 1
                    end
                end
            end
        end
    end
    local common, common_n = nil, 0
    for k, n in pairs(sizes) do
        if n > common_n or (n == common_n and k < common) then common, common_n = k, n end
    end
    r.sizes = sizes
    r.channels = channels
    if common then
        r.min_size, r.max_size, r.common_size = { min_h, min_w }, { max_h, max_w }, common
        local nd = 0
        for _ in pairs(sizes) do nd = nd + 1 end
        say('image sizes (HxW): min %dx%d, max %dx%d, most common %s (%d of %d), %d distinct',
            min_h, min_w, max_h, max_w, common, common_n, #ds.samples, nd)
        local ch = {}
        for k, n in pairs(channels) do ch[#ch + 1] = k .. ' (' .. n .. ')' end
        table.sort(ch)
        say('channels in the files: %s', table.concat(ch, ', '))
    end

    if ds.task == 'segmentation' and opts.masks ~= false then
        r.mask_pixels = hist
        local total, keys = 0, {}
        for v, n in pairs(hist) do total = total + n; keys[#keys + 1] = v end
        table.sort(keys)
        say('mask pixels per class:')
        for _, v in ipairs(keys) do
            local name = ds.classes[v + 1] or (v == 255 and 'ignore') or 'UNKNOWN CLASS'
            say('  %3d %-16s %14s  %6.2f%%', v, name, group_digits(hist[v]), 100 * hist[v] / total)
        end
    end
    if ds.task == 'segmentation' then
        say('images without masks: %d', #r.without_mask)
        for i = 1, math.min(#r.without_mask, 5) do say('  %s', r.without_mask[i]) end
        if #r.without_mask > 5 then say('  ...') end
    end
    say('unreadable files: %d', #r.unreadable)
    for _, u in ipairs(r.unreadable) do say('  %s', u.message) end

    local paths = {}
    for _, s in ipairs(ds.samples) do paths[#paths + 1] = s.image end
    r.duplicates = M.duplicates(paths)
    say('duplicate files (same bytes): %d group%s', #r.duplicates, #r.duplicates == 1 and '' or 's')
    for _, g in ipairs(r.duplicates) do
        local rel = {}
        local prefix = ds.root:gsub('/+$', '') .. '/'
        for i, p in ipairs(g) do rel[i] = p:sub(1, #prefix) == prefix and p:sub(#prefix + 1) or p end
        say('  %s', table.concat(rel, ' = '))
    end
    return r
end

return setmetatable(M, { __call = function(_, ...) return M.info(...) end })
