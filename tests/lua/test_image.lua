-- test_image.lua: autonad.image through the FFI on files the test writes itself (save_png,
-- then load, info, load_mask), its error messages, and one image of each shared data set
-- (../shared/data from the repository, or $AUTONAD_DATA) when that folder exists.
local autonad = require 'autonad'
local image = require 'autonad.image'
local T = require 'testing'

local tests = {}

local here = debug.getinfo(1, 'S').source:match('^@(.*)/[^/]*$') or '.'
local tmp = os.tmpname()

local function grey_image(h, w)
    local t = autonad.tensor(h, w, 1)
    for y = 1, h do
        for x = 1, w do t:set(((y * 31 + x * 17) % 256) / 255, y, x, 1) end
    end
    return t
end

function tests.save_then_load_grey_and_rgb()
    local g = grey_image(5, 7)
    image.save_png(tmp, g)
    local info = image.info(tmp)
    T.eq(info.height, 5); T.eq(info.width, 7); T.eq(info.channels, 1)
    local back = image.load(tmp) -- channels follow the file: grey
    T.eq(#back:size(), 3); T.eq(back:size(3), 1)
    T.all_near(back, g, 0, 'grey round trip')
    local rgb = image.load(tmp, 3)
    T.eq(rgb:size(3), 3)
    T.eq(rgb:get(2, 3, 1), g:get(2, 3, 1)); T.eq(rgb:get(2, 3, 3), g:get(2, 3, 1))

    local c = autonad.tensor(3, 4, 3)
    for y = 1, 3 do for x = 1, 4 do for k = 1, 3 do
        c:set(((y * 50 + x * 20 + k * 70) % 256) / 255, y, x, k)
    end end end
    image.save_png(tmp, c)
    T.eq(image.info(tmp).channels, 3)
    T.all_near(image.load(tmp), c, 0, 'rgb round trip')
    local luma = image.load(tmp, 1)
    T.near(luma:get(2, 2, 1), 0.299 * c:get(2, 2, 1) + 0.587 * c:get(2, 2, 2) + 0.114 * c:get(2, 2, 3), 1e-6)
    -- a tensor to reuse is resized and filled
    local out = autonad.tensor(1)
    T.ok(image.load(tmp, 3, out) == out); T.eq(out:size(1), 3)
    os.remove(tmp)
end

function tests.masks_in_both_modes()
    local m = autonad.from_table({ { 0, 1, 2 }, { 255, 127, 128 } })
    image.save_png(tmp, m)
    T.all_near(image.load_mask(tmp), m, 0, 'class indices')
    T.all_near(image.load_mask(tmp, { threshold = 128, value = 3 }),
        autonad.from_table({ { 0, 0, 0 }, { 3, 0, 3 } }), 0, 'threshold')
    T.all_near(image.load_mask(tmp, { threshold = 128 }),
        autonad.from_table({ { 0, 0, 0 }, { 1, 0, 1 } }), 0, 'threshold, default value')
    os.remove(tmp)
end

function tests.errors_carry_the_c_message()
    local missing = tmp .. '.missing.png'
    T.errors(function() image.load(missing, 3) end,
        'image_load: ' .. missing .. ': cannot open (No such file or directory)')
    T.errors(function() image.info(missing) end, 'image_info: ' .. missing .. ': cannot open')
    T.errors(function() image.load_mask(missing) end, 'mask_load: ' .. missing .. ': cannot open')
    local f = assert(io.open(tmp, 'wb')); f:write('not an image'); f:close()
    T.errors(function() image.load(tmp, 1) end,
        'image_load: ' .. tmp .. ': unknown image format (not PNG, JPEG or BMP)')
    T.errors(function() image.load(tmp, 2) end, 'image_load: channels must be 1 or 3, got 2')
    T.errors(function() image.save_png(tmp, autonad.from_table({ { 0.5 } })) end,
        'png_save: mask value 0.5 at row 0, column 0 is not an integer in 0..255')
    T.errors(function() image.load(nil) end, 'image.load: path must be a string, got nil')
    -- the error points at the caller's line, not inside image.lua
    local err = T.errors(function() image.load(missing, 3) end, 'cannot open')
    T.ok(err:find('test_image.lua', 1, true), err)
    os.remove(tmp)
end

-- ---- the shared data sets ----

local function data_root()
    local root = os.getenv('AUTONAD_DATA') or (here .. '/../../../shared/data')
    local f = io.open(root .. '/README.md', 'rb')
    if f then f:close(); return root end
end

local function need_data(sub)
    local root = data_root()
    if not root then
        T.skip('no shared data (set AUTONAD_DATA or put the data sets in ../shared/data beside the repository)')
    end
    local path = root .. '/' .. sub
    local f = io.open(path, 'rb')
    if not f then T.skip('shared data lacks ' .. path) end
    f:close()
    return path
end

local function check_unit_range(t)
    local s = t:sum() / t:numel()
    T.ok(s > 0 and s < 1, 'mean ' .. s .. ' should lie inside (0, 1)')
end

function tests.shared_neu_seg_bmp_and_mask()
    local img = need_data('neu-seg/Source Images/In_1.bmp')
    local mask = need_data('neu-seg/Ground truth/In_1.png')
    local info = image.info(img)
    T.eq(info.height, 200); T.eq(info.width, 200); T.eq(info.channels, 1)
    local x = image.load(img)
    T.eq(x:size(3), 1); check_unit_range(x)
    local m = image.load_mask(mask, { threshold = 128, value = 1 }) -- In = inclusion, class 1
    T.eq(m:size(1), 200); T.eq(m:size(2), 200)
    local defect = m:sum()
    T.ok(defect > 0 and defect < 200 * 200, 'inclusion pixels: ' .. defect)
end

function tests.shared_magnetic_tile_jpeg_and_mask()
    local img = need_data('magnetic-tile/MT_Blowhole/Imgs/exp1_num_108719.jpg')
    local mask = need_data('magnetic-tile/MT_Blowhole/Imgs/exp1_num_108719.png')
    local info = image.info(img)
    local x = image.load(img, 1)
    T.eq(x:size(1), info.height); T.eq(x:size(2), info.width)
    check_unit_range(x)
    local m = image.load_mask(mask, { threshold = 128, value = 1 }) -- Blowhole, class 1
    T.eq(m:size(1), info.height); T.eq(m:size(2), info.width)
    T.ok(m:sum() > 0, 'a blowhole mask has defect pixels')
end

function tests.shared_neu_cls_palette_bmp()
    local img = need_data('neu-cls/crazing/Cr_1.bmp')
    T.eq(image.info(img).channels, 1) -- an 8-bit grey palette counts as grey
    local x = image.load(img, 3)
    T.eq(x:size(1), 200); T.eq(x:size(2), 200); T.eq(x:size(3), 3)
    T.eq(x:get(10, 20, 1), x:get(10, 20, 3)) -- grey replicated
    check_unit_range(x)
end

return tests
