-- autonad.image: images and masks from files (PNG, JPEG, BMP, told apart by content) into
-- channels-last tensors, and PNG writing; mirrors the "images and masks" section of
-- core/autonad.h (core/io/). Failures raise the C message, which names the file and reason.
local ffi = require 'ffi'
local core = require 'autonad.ffi'
local tensor = require 'autonad.tensor'
local C, check = core.C, core.check

local M = {}

local dims = ffi.new('int32_t[3]')

local function need_path(fn, path)
    if type(path) ~= 'string' then
        error('image.' .. fn .. ': path must be a string, got ' .. type(path), 3)
    end
end

--- {height=, width=, channels=} of the image at path without decoding its pixels; channels
--- as stored: 1 grey (or grey palette), 2 grey+alpha, 3 colour, 4 colour+alpha.
function M.info(path)
    need_path('info', path)
    check(C.nad_image_info(path, dims, dims + 1, dims + 2))
    return { height = dims[0], width = dims[1], channels = dims[2] }
end

--- A tensor [H,W,channels] with values in [0,1]. channels is 1 (grey, ITU-R 601 luma) or 3
--- (RGB); left out, it follows the file (1 for grey files, else 3). out (optional) is a
--- tensor to reuse; it is resized.
function M.load(path, channels, out)
    need_path('load', path)
    if channels == nil then
        channels = M.info(path).channels <= 2 and 1 or 3
    end
    out = out or tensor.new()
    check(C.nad_image_load(path, channels, out))
    return out
end

--- A mask [H,W] of class indices (floats). opts.threshold (default: none) switches from
--- "pixel values are the class indices" to "opts.value (default 1) where pixel >= threshold,
--- else 0" (on the 0..255 scale). opts.out: a tensor to reuse.
function M.load_mask(path, opts)
    need_path('load_mask', path)
    opts = opts or {}
    local threshold, value = opts.threshold or -1, opts.value or 1
    if threshold ~= -1 and (type(threshold) ~= 'number' or threshold < 0) then
        error('image.load_mask: threshold must be a number >= 0, got ' .. tostring(threshold), 2)
    end
    local out = opts.out or tensor.new()
    check(C.nad_mask_load(path, threshold, value, out))
    return out
end

--- Writes t [H,W,1|3] (values clamped to [0,1]) or a mask [H,W] (integers 0..255) as an
--- 8-bit PNG.
function M.save_png(path, t)
    need_path('save_png', path)
    if not tensor.is_tensor(t) then error('image.save_png: t must be a tensor', 2) end
    check(C.nad_png_save(path, t))
end

return M
