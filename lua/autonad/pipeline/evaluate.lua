-- autonad.pipeline.evaluate: runs a subnet over a split and returns its metrics (mIoU, mF1,
-- per-class IoU, pixel accuracy; or accuracy, per-class recall, confusion matrix) and the
-- time it took. The search's fitness, fine-tuning's model selection and `autonad eval` use it.
local metrics = require 'autonad.metrics'
local progress = require 'autonad.pipeline.progress'

local M = {}

--- Evaluates net (a supernet or an extracted subnet) on split. a: the architecture to select
--- (nil: keep the current one). opts.max_images limits the images (a prefix of the split),
--- opts.batch the batch size (default 8), opts.loader reuses a loader, opts.batches evaluates
--- batches already in memory (see M.cache). Returns
--- {summary = metrics table, seconds = time spent in the network, images = n}.
function M.subnet(ctx, net, a, split, opts)
    opts = opts or {}
    if a then net:set_arch(a) end
    net:set_training(false)
    local grad_was = net:set_grad_enabled(false) -- evaluation keeps no activations for a backward
    local conf = metrics.Confusion.new(ctx:num_classes(), ctx:data().classes)
    local seconds, images = 0, 0
    local function run(x, y)
        local t0 = progress.now()
        local logits = net:forward(x)
        seconds = seconds + progress.now() - t0
        conf:update(logits, y)
        images = images + x:size(1)
    end
    if opts.batches then
        for _, b in ipairs(opts.batches) do run(b[1], b[2]) end
    else
        local loader = opts.loader or ctx:loader(split, opts.batch or 8, 'none', opts.max_images)
        for x, y in loader:epoch(0) do run(x, y) end
        if not opts.loader then loader:close() end
    end
    net:set_grad_enabled(grad_was)
    local task = ctx.recipe.task
    local summary = task == 'segmentation' and conf:segmentation() or conf:classification()
    return { summary = summary, table = conf:to_table(), seconds = seconds, images = images, confusion = conf }
end

--- The batches of split decoded once and kept in memory ({ {images, targets}, ... }), for
--- stages that evaluate many subnets on the same images (the search).
function M.cache(ctx, split, batch, max_images)
    local loader = ctx:loader(split, batch or 8, 'none', max_images)
    local out = {}
    for x, y in loader:epoch(0) do out[#out + 1] = { x:clone(), y:clone() } end
    loader:close()
    return out
end

return M
