-- autonad.pipeline.finetune: fine-tunes one subnet from its inherited supernet weights
-- (reference section 6): the subnet is extracted into a standalone network with its own
-- contiguous weights, trained with Adam and a poly schedule with warm-up and the fine-tuning
-- augmentation, evaluated on val after every epoch; the best epoch's weights are kept.
-- A checkpoint at every epoch end makes it resumable with the same result.
local autonad = require 'autonad'
local arch_mod = require 'autonad.arch'
local ckpt = require 'autonad.checkpoint'
local json = require 'autonad.json'
local optim = require 'autonad.optim'
local schedule = require 'autonad.optim.schedule'
local progress = require 'autonad.pipeline.progress'
local evaluate = require 'autonad.pipeline.evaluate'
local context = require 'autonad.pipeline.context'
local optstate = require 'autonad.pipeline.optstate'

local M = {}

-- the model-selection score of an evaluation: mIoU (segmentation) or accuracy
function M.score(summary) return summary.miou or summary.accuracy or 0 end

--- The architecture to fine-tune: 'searched' (the search stage's best), 'largest',
--- 'smallest', or a path to an architecture JSON file.
function M.resolve_arch(ctx, which)
    if which == 'largest' or which == 'smallest' then return arch_mod[which](ctx.space) end
    if which == 'searched' then
        local p = ctx:path('search.json')
        if not context.exists(p) then
            error('autonad: no search result ' .. p .. ' (run the search stage first, or fine-tune ' ..
                "'largest' / an architecture file)", 0)
        end
        return json.read(p).best
    end
    return json.read(which)
end

--- Loads the supernet's trained weights from the run directory into ctx's supernet.
function M.load_supernet(ctx)
    local net = ctx:supernet()
    if not ctx._supernet_loaded then
        local p = ctx:path('supernet.ckpt')
        if not context.exists(p) then error('autonad: no supernet checkpoint ' .. p .. ' (run train-supernet first)', 0) end
        net:params():load_values(ckpt.load(p), 'w/', p)
        ctx._supernet_loaded = true
    end
    return net
end

--- Fine-tunes arch (see resolve_arch; default 'searched') and writes finetune_<tag>.ckpt (the
--- best subnet's weights + arch) and finetune_<tag>.json. opts.fresh, opts.stop_after_epoch.
function M.run(ctx, which, opts)
    opts = opts or {}
    which = which or 'searched'
    local tag = opts.tag or (which:match('^[%w_]+$') and which or 'custom')
    local cfg, r = ctx.recipe.finetune, ctx.recipe
    local a = M.resolve_arch(ctx, which)
    arch_mod.validate(ctx.space, a)
    local super = M.load_supernet(ctx)
    super:set_arch(a)
    local net = super:extract()
    local P = net:params()
    local entries = P:active()
    local values, grads = {}, {}
    for i, e in ipairs(entries) do values[i], grads[i] = e.value, e.grad end
    local opt = optim.Adam(values, grads, { lr = cfg.lr, weight_decay = cfg.weight_decay })
    local slices = {}
    for i, e in ipairs(entries) do slices[i] = e.view end
    local loader = ctx:loader('train', cfg.batch, cfg.augment)
    local per_epoch = loader:num_batches()
    local total = per_epoch * cfg.epochs
    local sched = schedule.poly({ base = cfg.lr, power = cfg.power, total = total,
        warmup = math.min(math.floor(cfg.warmup_epochs * per_epoch), total - 1) })
    local state_path, best_path = ctx:path('finetune_' .. tag .. '.state'), ctx:path('finetune_' .. tag .. '.ckpt')
    local start_epoch, it, best, history = 1, 0, { score = -1 }, {}

    if not opts.fresh and context.exists(state_path) then
        local t, meta = ckpt.load(state_path)
        for _, e in ipairs(entries) do e.view(e.value):copy(t['w/' .. e.name]) end
        optstate.unpack(opt, entries, meta.optimizer, t)
        net.rng:set_state(meta.net_rng)
        start_epoch, it, best, history = meta.epoch + 1, meta.iteration, meta.best, meta.history
        ctx:say('[finetune] resuming %s after epoch %d from %s', tag, meta.epoch, state_path)
    end

    net:set_training(true)
    local prog = progress.new('finetune ' .. tag, total, { quiet = ctx.quiet })
    prog:resume(it)
    local val_loader = ctx:loader('val', cfg.batch, 'none')
    for epoch = start_epoch, cfg.epochs do
        local loss_sum, n = 0, 0
        net:set_training(true)
        for images, targets in loader:epoch(epoch) do
            opt.lr = sched.lr(it)
            local loss = net:loss(net:forward(images), targets)
            if loss ~= loss then
                error(string.format('autonad: the fine-tuning loss became nan at epoch %d; the last good state is %s',
                    epoch, state_path), 0)
            end
            net:backward(net.dlogits)
            opt:step(slices)
            P:zero_grad()
            loss_sum, n, it = loss_sum + loss, n + 1, it + 1
            prog:step(1, { { 'epoch', epoch .. '/' .. cfg.epochs }, { 'loss', loss_sum / n } })
        end
        local ev = evaluate.subnet(ctx, net, nil, 'val', { loader = val_loader })
        local val, score = ev.table, M.score(ev.summary)
        local rec = { epoch = epoch, loss = loss_sum / math.max(n, 1), val_score = score }
        history[#history + 1] = rec
        ctx:log('finetune_' .. tag, rec)
        if score > best.score then
            best = { score = score, epoch = epoch }
            ckpt.save(best_path, P:extract('value'), { arch = a, epoch = epoch, val = val, tag = tag })
        end
        local tensors = {}
        for _, e in ipairs(entries) do tensors['w/' .. e.name] = e.view(e.value) end
        ckpt.save(state_path, tensors, { epoch = epoch, iteration = it, optimizer = optstate.pack(opt, entries, tensors),
            net_rng = net.rng:state(), best = best, history = history })
        if opts.stop_after_epoch and epoch >= opts.stop_after_epoch then break end
    end
    loader:close()
    val_loader:close()
    local summary = { tag = tag, arch = a, best_epoch = best.epoch, best_val = best.score, history = history,
        weights = best_path }
    json.write(ctx:path('finetune_' .. tag .. '.json'), summary)
    return summary
end

return M
