-- autonad.pipeline.predict: runs a fine-tuned subnet on image files. Segmentation writes one
-- class-index PNG mask per image (values 0..K-1, at the image's own size: the logits are
-- resized to it before the argmax); classification
-- prints and records each image's label. Used by `autonad predict`.
local ffi = require 'ffi'
local autonad = require 'autonad'
local image = require 'autonad.image'
local json = require 'autonad.json'
local core = require 'autonad.ffi'
local eval = require 'autonad.pipeline.eval'
local C, check = core.C, core.check

local M = {}

local function basename(p) return (p:match('([^/]+)$') or p):gsub('%.[^.]*$', '') end

-- the argmax over the last dim of logits [1,H,W,K] as a [H,W] tensor of class indices
local function argmax(logits, h, w, k)
    local out = autonad.tensor(h, w)
    local src, dst = logits:contiguous():data(), out:data()
    for i = 0, h * w - 1 do
        local best, bi = src[i * k], 0
        for c = 1, k - 1 do
            if src[i * k + c] > best then best, bi = src[i * k + c], c end
        end
        dst[i] = bi
    end
    return out
end

--- Predicts every image in paths with the fine-tuned subnet `tag`; masks go to out_dir.
--- Returns a list of {image, mask or label, class_name}.
function M.run(ctx, paths, opts)
    opts = opts or {}
    local r = ctx.recipe
    local net = eval.load_subnet(ctx, opts.tag or 'searched')
    net:set_training(false)
    net:set_grad_enabled(false)
    local H, W, cin = r.data.size[1], r.data.size[2], r.data.channels
    local k, names = ctx:num_classes(), ctx:data().classes
    local out_dir = opts.out or ctx:path('predictions')
    require('autonad.pipeline.context').mkdir_p(out_dir)
    local img, x, full = autonad.tensor(), autonad.tensor(1, H, W, cin), autonad.tensor()
    local results = {}
    for _, p in ipairs(paths) do
        image.load(p, cin, img)                      -- [h, w, cin] in [0, 1]; errors name the file
        local h, w = img:size(1), img:size(2)
        check(C.nad_resize_bilinear_forward(H, W, 0, img:view(1, h, w, cin), x))
        check(C.nad_scale(1 / r.data.std, x, x))
        check(C.nad_add(1, x, -r.data.mean / r.data.std, autonad.from_table({ { { { 1 } } } }), x))
        local logits = net:forward(x)
        local rec = { image = p }
        if r.task == 'segmentation' then
            -- logits resized to the image's own size, then the class per pixel (smooth edges,
            -- unlike resizing the class map)
            check(C.nad_resize_bilinear_forward(h, w, 0, logits, full))
            local m = argmax(full, h, w, k)
            rec.mask = out_dir .. '/' .. basename(p) .. '.png'
            image.save_png(rec.mask, m)
        else
            local cls = argmax(logits:view(1, 1, 1, k), 1, 1, k):get(1, 1)
            rec.label, rec.class_name = cls, names[cls + 1]
        end
        results[#results + 1] = rec
    end
    json.write(out_dir .. '/predictions.json', results)
    return results, out_dir
end

return M
