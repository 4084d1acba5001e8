-- test_shared_data: the real data sets of ../shared/data (or $AUTONAD_DATA) through the
-- adapters, the fixed splits and the loader: every image and mask of neu-seg, the 392
-- magnetic-tile split images and neu-cls decoded, counts and classes checked against the
-- data README. Skipped, saying so, when the data are absent.
local T = require 'testing'
local data = require 'autonad.data'

local tests = {}
local here = debug.getinfo(1, 'S').source:match('^@(.*)/[^/]*$') or '.'
local root = data.shared_root(here .. '/../..')

local function need_root()
    if not root then T.skip('no shared data (set AUTONAD_DATA or put it at ../shared/data)') end
    return root
end

-- decodes every sample of the split through the loader (4 threads); returns the number of
-- samples and, for masks, the set of values seen
local function decode_all(ds, idx, opts)
    local L = data.loader.new(ds:subset(idx), {
        batch_size = 16, threads = 4, prefetch = 4, shuffle = false,
        height = opts.height, width = opts.width, task = ds.task })
    local n, values = 0, {}
    for x, y in L:epoch(0) do
        n = n + x:size(1)
        if ds.task == 'segmentation' then
            local d, m = y:data(), y:numel()
            for i = 0, m - 1, 7 do values[d[i]] = true end
        end
    end
    L:close()
    return n, values
end

local function check_set(name, kind, sizes, class_counts, opts)
    local r = need_root()
    local ds = data.load(kind, r .. '/' .. name, opts.adapter)
    local sp = data.split.from_files(ds, r .. '/splits/' .. name)
    T.eq(#sp.train, sizes[1], name .. ' train')
    T.eq(#sp.val, sizes[2], name .. ' val')
    T.eq(#sp.test, sizes[3], name .. ' test')
    local all = {}
    for _, s in ipairs({ 'train', 'val', 'test' }) do
        for _, i in ipairs(sp[s]) do all[#all + 1] = i end
    end
    T.eq(table.concat(ds:class_counts(all), ','), class_counts, name .. ' per class')
    -- each split stratified 6:2:2 within one sample per class
    for k = 2, #ds.classes do
        local total = ds:class_counts(all)[k]
        if total > 0 then
            T.ok(math.abs(ds:class_counts(sp.train)[k] - 0.6 * total) <= 1, name .. ' train ratio of ' .. ds.classes[k])
        end
    end
    local n, values = decode_all(ds, all, opts)
    T.eq(n, #all, name .. ' decoded')
    return ds, values
end

function tests.neu_seg_900()
    local ds, values = check_set('neu-seg', 'neu_seg', { 540, 180, 180 }, '0,300,300,300', {})
    T.eq(table.concat(ds.classes, ','), 'background,inclusion,patches,scratches')
    for v in pairs(values) do T.ok(v == 0 or v == 1 or v == 2 or v == 3, 'mask value ' .. v) end
    T.ok(values[0] and values[1] and values[2] and values[3], 'every class appears in the masks')
end

function tests.magnetic_tile_392()
    -- sizes vary: the loader resizes to one size
    local ds, values = check_set('magnetic-tile', 'magnetic_tile', { 235, 78, 79 }, '0,115,85,57,32,103',
        { height = 128, width = 128 })
    T.eq(#ds.samples, 392)
    for v in pairs(values) do T.ok(v >= 0 and v <= 5 and v % 1 == 0, 'mask value ' .. v) end
    T.ok(values[5], 'Uneven pixels appear')
    local free = data.load('magnetic_tile', root .. '/magnetic-tile', { include_free = true })
    T.eq(#free.samples, 392 + 952)
end

function tests.neu_cls_1800()
    local ds = check_set('neu-cls', 'neu_cls', { 1080, 360, 360 }, '300,300,300,300,300,300', {})
    T.eq(ds.task, 'classification')
    -- the README's known duplicate pair
    local dup = data.info.duplicates({ root .. '/neu-cls/patches/Pa_101.bmp', root .. '/neu-cls/patches/Pa_105.bmp',
        root .. '/neu-cls/patches/Pa_102.bmp' })
    T.eq(#dup, 1)
    T.eq(#dup[1], 2)
end

return tests
