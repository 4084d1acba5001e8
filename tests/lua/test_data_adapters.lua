-- test_data_adapters: every dataset adapter on a tiny tree of its layout built in a temporary
-- folder (PNG files written by the core; the decoders go by content, so a PNG named .bmp or
-- .jpg stands in for those formats, plus one real BMP from a writer here), the splits, the
-- loader from Lua, and `data info`.
local T = require 'testing'
local ffi = require 'ffi'
local autonad = require 'autonad'
local data = require 'autonad.data'
local fs = require 'autonad.data.fs'
local C = autonad.C

local tests = {}

-- a grey image (value v) or a mask (class c on the top-left quarter) written as PNG
local function write_png(path, h, w, v, is_mask)
    fs.mkdir(path:match('^(.*)/[^/]*$'))
    local t = is_mask and autonad.tensor(h, w) or autonad.tensor(h, w, 1)
    if is_mask then
        for y = 1, math.ceil(h / 2) do for x = 1, math.ceil(w / 2) do t:set(v, y, x) end end
    else
        t:fill(v)
    end
    assert(C.nad_png_save(path, t) == 0, ffi.string(C.nad_last_error()))
end

-- an 8-bit palette (grey) BMP of h x w with every pixel p
local function write_bmp(path, h, w, p)
    fs.mkdir(path:match('^(.*)/[^/]*$'))
    local row = math.ceil(w / 4) * 4
    local function u32(n) return string.char(n % 256, math.floor(n / 256) % 256, math.floor(n / 65536) % 256, 0) end
    local function u16(n) return string.char(n % 256, math.floor(n / 256) % 256) end
    local off = 14 + 40 + 1024
    local parts = { 'BM', u32(off + row * h), u32(0), u32(off), u32(40), u32(w), u32(h), u16(1), u16(8),
        u32(0), u32(row * h), u32(2835), u32(2835), u32(256), u32(0) }
    for i = 0, 255 do parts[#parts + 1] = string.char(i, i, i, 0) end
    parts[#parts + 1] = string.rep(string.rep(string.char(p), w) .. string.rep('\0', row - w), h)
    local f = assert(io.open(path, 'wb'))
    f:write(table.concat(parts))
    f:close()
end

local function with_tree(fn)
    local root = fs.temp_dir()
    local ok, err = pcall(fn, root)
    fs.remove_tree(root)
    if not ok then error(err, 0) end
end

local function rels(ds, idx)
    local out = {}
    for _, i in ipairs(idx or {}) do out[#out + 1] = ds.samples[i].rel end
    return table.concat(out, ',')
end

function tests.neu_seg_samples_classes_and_errors()
    with_tree(function(root)
        for _, p in ipairs({ 'In', 'Pa', 'Sc' }) do
            for i = 1, 5 do
                write_png(root .. '/Source Images/' .. p .. '_' .. i .. '.bmp', 6, 6, 0.5)
                write_png(root .. '/Ground truth/' .. p .. '_' .. i .. '.png', 6, 6, 255, true)
            end
        end
        write_bmp(root .. '/Source Images/In_6.bmp', 6, 5, 77)
        write_png(root .. '/Ground truth/In_6.png', 6, 5, 255, true)
        local ds = data.load('neu-seg', root)
        T.eq(#ds.samples, 16)
        T.eq(ds.task, 'segmentation')
        T.eq(table.concat(ds.classes, ','), 'background,inclusion,patches,scratches')
        local s = ds.samples[ds:index_of('Source Images/Pa_3.bmp')]
        T.eq(s.label, 2)
        T.eq(s.mask_value, 2)
        T.eq(s.mask_threshold, 128)
        T.eq(s.class_name, 'patches')
        T.eq(s.mask, root .. '/Ground truth/Pa_3.png')
        T.eq(table.concat(ds:class_counts(), ','), '0,6,5,5')
        -- the real BMP decodes to its value
        local img = autonad.tensor()
        T.eq(C.nad_image_load(ds.samples[ds:index_of('Source Images/In_6.bmp')].image, 1, img), 0)
        T.near(img:get(3, 2, 1), 77 / 255, 1e-6)
        -- a stratified split: 6:2:2 per class, seeded
        local sp = data.split.stratified(ds, { train = 0.6, val = 0.2, test = 0.2 }, 5)
        T.eq(#sp.train + #sp.val + #sp.test, 16)
        T.eq(table.concat(ds:class_counts(sp.val), ','), '0,1,1,1')
        T.eq(table.concat(ds:class_counts(sp.train), ','), '0,4,3,3')
        local again = data.split.stratified(ds, { train = 0.6, val = 0.2, test = 0.2 }, 5)
        T.eq(rels(ds, again.train), rels(ds, sp.train))
        local other = data.split.stratified(ds, { train = 0.6, val = 0.2, test = 0.2 }, 6)
        T.ok(rels(ds, other.train) ~= rels(ds, sp.train), 'another seed, another split')
        -- split files round trip, then the errors
        data.split.write(ds, sp.train, root .. '/s.train.txt')
        data.split.write(ds, sp.val, root .. '/s.val.txt')
        local back = data.split.from_files(ds, root .. '/s')
        T.eq(rels(ds, back.train), rels(ds, sp.train))
        T.eq(back.test, nil)
        local f = io.open(root .. '/s.test.txt', 'w')
        f:write('Source Images/In_1.bmp\nSource Images/In_99.bmp\n')
        f:close()
        T.errors(function() data.split.from_files(ds, root .. '/s') end,
            'split: ' .. root .. '/Source Images/In_99.bmp (line 2 of ' .. root .. '/s.test.txt) does not exist')
        f = io.open(root .. '/s.test.txt', 'w')
        f:write(ds.samples[sp.train[1]].rel .. '\n')
        f:close()
        T.errors(function() data.split.from_files(ds, root .. '/s') end, 'is in both test and train')
        T.errors(function() data.split.from_files(ds, root .. '/nope') end,
            'split: no split file ' .. root .. '/nope.{train,val,test}.txt')
        os.remove(root .. '/Ground truth/Sc_4.png')
        T.errors(function() data.load('neu_seg', root) end,
            'neu_seg: mask ' .. root .. '/Ground truth/Sc_4.png does not exist')
        T.errors(function() data.load('neu_seg', root .. '/none') end,
            'neu_seg: folder ' .. root .. '/none/Source Images does not exist')
    end)
end

function tests.magnetic_tile_with_and_without_free()
    with_tree(function(root)
        local names = { 'Blowhole', 'Break', 'Crack', 'Fray', 'Uneven', 'Free' }
        for k, c in ipairs(names) do
            for i = 1, k do
                local base = root .. '/MT_' .. c .. '/Imgs/exp_' .. i
                write_png(base .. '.jpg', 5, 7, 0.25)
                write_png(base .. '.png', 5, 7, c == 'Free' and 0 or 255, true)
            end
        end
        local ds = data.load('magnetic_tile', root)
        T.eq(#ds.samples, 15)
        T.eq(table.concat(ds:class_counts(), ','), '0,1,2,3,4,5')
        local s = ds.samples[ds:index_of('MT_Fray/Imgs/exp_2.jpg')]
        T.eq(s.label, 4)
        T.eq(s.mask, root .. '/MT_Fray/Imgs/exp_2.png')
        T.eq(s.class_name, 'Fray')
        local all = data.load('mt', root, { include_free = true })
        T.eq(#all.samples, 21)
        T.eq(all.samples[all:index_of('MT_Free/Imgs/exp_6.jpg')].label, 0)
        T.eq(all.samples[all:index_of('MT_Free/Imgs/exp_6.jpg')].class_name, 'Free')
        os.remove(root .. '/MT_Crack/Imgs/exp_1.png')
        T.errors(function() data.load('magnetic-tile', root) end,
            'magnetic_tile: mask ' .. root .. '/MT_Crack/Imgs/exp_1.png does not exist')
        os.execute('rm -r ' .. fs.quote(root .. '/MT_Break'))
        T.errors(function() data.load('magnetic-tile', root) end,
            'magnetic_tile: folder ' .. root .. '/MT_Break/Imgs does not exist')
    end)
end

function tests.voc_fixed_splits_and_ignore_masks()
    with_tree(function(root)
        for _, id in ipairs({ 'a1', 'a2', 'b1', 'c1' }) do
            write_png(root .. '/JPEGImages/' .. id .. '.jpg', 4, 4, 0.5)
        end
        for _, id in ipairs({ 'a1', 'a2', 'b1' }) do
            write_png(root .. '/SegmentationClass/' .. id .. '.png', 4, 4, 255, true)
        end
        fs.mkdir(root .. '/ImageSets/Segmentation')
        local function list(name, ids)
            local f = io.open(root .. '/ImageSets/Segmentation/' .. name .. '.txt', 'w')
            f:write(table.concat(ids, '\n'), '\n')
            f:close()
        end
        list('train', { 'a1', 'a2' })
        list('val', { 'b1' })
        list('test', { 'c1' })
        local ds = data.load('voc', root)
        T.eq(#ds.samples, 4)
        T.eq(#ds.classes, 21)
        T.eq(rels(ds, ds.splits.train), 'JPEGImages/a1.jpg,JPEGImages/a2.jpg')
        T.eq(rels(ds, ds.splits.test), 'JPEGImages/c1.jpg')
        local s = ds.samples[ds.splits.val[1]]
        T.eq(s.mask_threshold, -1)
        local m = autonad.tensor()
        T.eq(C.nad_mask_load(s.mask, s.mask_threshold, s.mask_value, m), 0)
        T.eq(m:get(1, 1), 255) -- ignore label kept as is
        T.eq(ds.samples[ds.splits.test[1]].mask, nil)
        list('val', { 'b1', 'zz' })
        T.errors(function() data.load('voc', root) end,
            'voc: ' .. root .. '/JPEGImages/zz.jpg (listed in ' .. root .. '/ImageSets/Segmentation/val.txt) does not exist')
        list('val', { 'c1' })
        T.errors(function() data.load('voc', root) end, 'voc: mask ' .. root .. '/SegmentationClass/c1.png')
    end)
end

function tests.neu_cls_and_folder()
    with_tree(function(root)
        local classes = data.neu_cls.classes
        for k, c in ipairs(classes) do
            for i = 1, 3 do write_bmp(root .. '/' .. c .. '/' .. c:sub(1, 2) .. '_' .. i .. '.bmp', 4, 4, 10 * k + i) end
        end
        write_png(root .. '/crazing/notes.txt', 2, 2, 0) -- not an image extension: skipped
        local ds = data.load('neu-cls', root)
        T.eq(ds.task, 'classification')
        T.eq(#ds.samples, 18)
        T.eq(ds.samples[ds:index_of('pitted_surface/pi_2.bmp')].label, 3)
        T.eq(ds.samples[ds:index_of('pitted_surface/pi_2.bmp')].mask, nil)
        local f = data.load('folder', root)
        T.eq(table.concat(f.classes, ','), table.concat(classes, ',')) -- sorted names
        local g = data.load('folder', root, { classes = { 'scratches', 'crazing' } })
        T.eq(#g.samples, 6)
        T.eq(g.samples[g:index_of('crazing/cr_1.bmp')].label, 1)
        T.errors(function() data.load('folder', root, { classes = { 'cats' } }) end,
            'folder: folder ' .. root .. '/cats does not exist')
        T.errors(function() data.load('nope', root) end, 'data.load: unknown dataset kind "nope"')
        -- info: counts, sizes, duplicates (byte-identical files)
        os.execute('cp ' .. fs.quote(root .. '/patches/pa_1.bmp') .. ' ' .. fs.quote(root .. '/patches/pa_9.bmp'))
        local out = io.open('/dev/null', 'w')
        local r = data.info(root, { out = out })
        out:close()
        T.eq(r.samples, 19)
        T.eq(r.counts.total[3], 4)
        T.eq(r.common_size, '4x4')
        T.eq(#r.duplicates, 1)
        T.eq(table.concat(r.duplicates[1], ','), root .. '/patches/pa_1.bmp,' .. root .. '/patches/pa_9.bmp')
        T.eq(#r.unreadable, 0)
        local bad = io.open(root .. '/scratches/sc_3.bmp', 'wb')
        bad:write('BM broken')
        bad:close()
        r = data.info(root, { quiet = true })
        T.eq(#r.unreadable, 1)
        T.ok(r.unreadable[1].message:find(root .. '/scratches/sc_3.bmp', 1, true), r.unreadable[1].message)
    end)
end

function tests.dagm_labels_and_splits()
    with_tree(function(root)
        for _, c in ipairs({ 'Class1', 'Class2' }) do
            for _, part in ipairs({ 'Train', 'Test' }) do
                local dir = root .. '/' .. c .. '/' .. part
                local lines = { '1' }
                for i = 1, 3 do
                    local name = string.format('%04d.PNG', i)
                    write_png(dir .. '/' .. name, 8, 8, 0.5)
                    if i == 2 then
                        write_png(dir .. '/Label/' .. string.format('%04d_label.PNG', i), 8, 8, 255, true)
                        lines[#lines + 1] = i .. '\t1\t' .. name .. '\t0\t' .. string.format('%04d_label.PNG', i)
                    else
                        lines[#lines + 1] = i .. '\t0\t' .. name .. '\t0'
                    end
                end
                fs.mkdir(dir .. '/Label')
                local f = io.open(dir .. '/Label/Labels.txt', 'w')
                f:write(table.concat(lines, '\n'), '\n')
                f:close()
            end
        end
        local ds = data.load('dagm', root)
        T.eq(#ds.samples, 12)
        T.eq(table.concat(ds.classes, ','), 'background,Class1,Class2')
        T.eq(#ds.splits.train, 6)
        local s = ds.samples[ds:index_of('Class2/Test/0002.PNG')]
        T.eq(s.label, 2)
        T.eq(s.mask, root .. '/Class2/Test/Label/0002_label.PNG')
        T.eq(ds.samples[ds:index_of('Class2/Test/0003.PNG')].mask, nil)
        T.eq(ds.samples[ds:index_of('Class2/Test/0003.PNG')].label, 0)
        local b = data.load('dagm', root, { binary = true })
        T.eq(b.samples[b:index_of('Class2/Test/0002.PNG')].mask_value, 1)
        os.remove(root .. '/Class1/Train/0003.PNG')
        T.errors(function() data.load('dagm', root) end,
            'dagm: ' .. root .. '/Class1/Train/0003.PNG (listed in ' .. root .. '/Class1/Train/Label/Labels.txt) does not exist')
    end)
end

function tests.mvtec_good_types_masks()
    with_tree(function(root)
        for i = 1, 3 do write_png(root .. '/train/good/00' .. i .. '.png', 8, 8, 0.5) end
        write_png(root .. '/test/good/000.png', 8, 8, 0.5)
        for _, t in ipairs({ 'crack', 'scratch' }) do
            for i = 1, 2 do
                write_png(root .. '/test/' .. t .. '/00' .. i .. '.png', 8, 8, 0.5)
                write_png(root .. '/ground_truth/' .. t .. '/00' .. i .. '_mask.png', 8, 8, 255, true)
            end
        end
        local ds = data.load('mvtec', root)
        T.eq(table.concat(ds.classes, ','), 'good,crack,scratch')
        T.eq(#ds.splits.train, 3)
        T.eq(#ds.splits.test, 5)
        local s = ds.samples[ds:index_of('test/scratch/002.png')]
        T.eq(s.label, 2)
        T.eq(s.defective, true)
        T.eq(s.mask, root .. '/ground_truth/scratch/002_mask.png')
        T.eq(ds.samples[ds:index_of('test/good/000.png')].defective, false)
        local b = data.load('mvtec', root, { binary = true })
        T.eq(b.samples[b:index_of('test/scratch/002.png')].label, 1)
        T.eq(b.samples[b:index_of('test/scratch/002.png')].class_name, 'defective')
        os.remove(root .. '/ground_truth/crack/001_mask.png')
        T.errors(function() data.load('mvtec', root) end,
            'mvtec: mask ' .. root .. '/ground_truth/crack/001_mask.png does not exist')
    end)
end

function tests.loader_from_lua_order_seed_and_errors()
    with_tree(function(root)
        local ds = data.load('magnetic_tile', (function()
            for k, c in ipairs({ 'Blowhole', 'Break', 'Crack', 'Fray', 'Uneven' }) do
                for i = 1, 2 do
                    local base = root .. '/MT_' .. c .. '/Imgs/e' .. i
                    write_png(base .. '.jpg', 6, 6, (2 * k + i) / 255)
                    write_png(base .. '.png', 6, 6, 255, true)
                end
            end
            return root
        end)())
        -- the first pixel tells which sample came: value 2k + i
        local function epoch_ids(L, e)
            local ids = {}
            for x, y in L:epoch(e) do
                for b = 1, x:size(1) do ids[#ids + 1] = math.floor(x:get(b, 1, 1, 1) * 255 + 0.5) end
                T.eq(y:dim(), 3)
            end
            return table.concat(ids, ',')
        end
        local L1 = data.loader.new(ds, { batch_size = 3, threads = 1, seed = 4 })
        local L2 = data.loader.new(ds, { batch_size = 3, threads = 3, seed = 4, prefetch = 1 })
        local a, b = epoch_ids(L1, 1), epoch_ids(L2, 1)
        T.eq(a, b)
        T.ok(a ~= epoch_ids(L1, 2), 'each epoch has its own order')
        local sorted = data.loader.new(ds, { batch_size = 4, shuffle = false })
        T.eq(epoch_ids(sorted, 1), '3,4,5,6,7,8,9,10,11,12')
        T.eq(sorted:num_batches(), 3)
        T.ok(sorted:wait_time().total >= 0)
        sorted:close()
        sorted:close() -- twice is fine
        T.errors(function() sorted:next() end, 'loader: used after close')
        -- a corrupt file: its batch fails naming it, the next one comes
        local f = io.open(ds.samples[1].image, 'wb')
        f:write('garbage')
        f:close()
        local L = data.loader.new(ds, { batch_size = 2, shuffle = false, height = 6, width = 6 })
        L:start(0)
        T.errors(function() L:next() end, 'loader_next: batch 0, sample 0: image_load: ' .. ds.samples[1].image)
        local x = L:next()
        T.eq(x:size(1), 2)
        L:close()
        T.errors(function() data.loader.new(ds, { batchsize = 2 }) end, 'loader: unknown option "batchsize"')
        L1:close()
        L2:close()
    end)
end

function tests.loader_generated_dataset()
    local g = data.generated.load({ n = 10, height = 16, width = 16, seed = 3, classes = { 0, 2, 5 } })
    T.eq(table.concat(g.classes, ','), 'background,pit,inclusion')
    T.eq(g.samples[1].label, 0)
    T.eq(g.samples[2].label, 1)
    T.eq(g.samples[3].label, 2)
    local L = data.loader.new(g, { batch_size = 4, threads = 2, augment = data.loader.flips_rotations })
    local n, labels = 0, {}
    for x, y in L:epoch(0) do
        n = n + x:size(1)
        T.eq(x:size(2), 16)
        for b = 1, y:size(1) do
            local m = 0
            for i = 1, 16 do for j = 1, 16 do m = math.max(m, y:get(b, i, j)) end end
            labels[#labels + 1] = m
        end
    end
    T.eq(n, 10)
    local seen = {}
    for _, m in ipairs(labels) do seen[m] = true end
    T.ok(seen[0] and seen[1] and seen[2], 'masks hold the ranks 1 and 2 and defect-free samples')
    L:close()
end

return tests
