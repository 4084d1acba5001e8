-- autonad.pipeline.eval: the final report of a fine-tuned subnet: metrics on the recipe's
-- evaluation split (mIoU, mF1, per-class IoU, pixel accuracy; or accuracy, per-class recall
-- and the confusion matrix), measured latency (batch 1, the recipe's threads, median of
-- repeats), parameters and FLOPs. Writes metrics_<tag>.json in the run directory.
local arch_mod = require 'autonad.arch'
local ckpt = require 'autonad.checkpoint'
local json = require 'autonad.json'
local cost = require 'autonad.supernet.cost'
local evaluate = require 'autonad.pipeline.evaluate'
local context = require 'autonad.pipeline.context'

local M = {}

--- The standalone network saved by fine-tuning (finetune_<tag>.ckpt): net, arch.
function M.load_subnet(ctx, tag)
    local p = ctx:path('finetune_' .. tag .. '.ckpt')
    if not context.exists(p) then error('autonad: no fine-tuned weights ' .. p .. ' (run finetune first)', 0) end
    local t, meta = ckpt.load(p)
    local a = meta.arch
    arch_mod.validate(ctx.space, a)
    local Supernet = require 'autonad.supernet'
    local r = ctx.recipe
    local net = Supernet.new(arch_mod.space_of(ctx.space, a), { in_channels = r.data.channels,
        classes = ctx:num_classes(), head = r.task == 'segmentation' and 'seg' or 'cls', seed = r.seed })
    net:set_arch(a)
    net:load_subnet(t, p)
    return net, a
end

--- Evaluates the fine-tuned subnet `tag` (default 'searched'); returns the report table.
function M.run(ctx, tag, opts)
    opts = opts or {}
    tag = tag or 'searched'
    local r = ctx.recipe
    local net, a = M.load_subnet(ctx, tag)
    local split = r.eval.split
    local ev = evaluate.subnet(ctx, net, nil, split, { batch = 8 })
    local c = cost.count(ctx.space, a, { in_channels = r.data.channels, classes = ctx:num_classes(),
        head = r.task == 'segmentation' and 'seg' or 'cls', input = r.data.size })
    local lat = require('autonad.latency').measure(net, a, { input = r.data.size, batch = 1,
        threads = r.threads, warmup = 5, repeats = opts.repeats or 20 })
    local report = { tag = tag, split = split, arch = a, metrics = ev.table, params = c.params,
        flops = c.flops, macs = c.macs, latency_ms = { median = lat.median, min = lat.min, p90 = lat.p90,
            threads = r.threads, batch = 1, input = r.data.size }, images = ev.images }
    json.write(ctx:path('metrics_' .. tag .. '.json'), report)
    return report
end

return M
