-- autonad.pipeline.train_supernet: single-path supernet training (reference section 3).
-- Each iteration samples one subnet uniformly (or the sandwich rule: largest, smallest and a
-- random one), runs forward / backward on a batch, and AdamW (cosine schedule with warm-up)
-- steps only that subnet's views of the shared weights. Every iteration appends
-- {iter, epoch, arch, forward_ms, loss, lr} to supernet_log.jsonl: the latency prior reads it.
-- A checkpoint (weights, optimiser state, random state, log position) is written atomically
-- at every epoch end; a run that is interrupted resumes from it and ends with the same
-- weights as an uninterrupted one.
local autonad = require 'autonad'
local arch = require 'autonad.arch'
local ckpt = require 'autonad.checkpoint'
local json = require 'autonad.json'
local optim = require 'autonad.optim'
local schedule = require 'autonad.optim.schedule'
local progress = require 'autonad.pipeline.progress'

local context = require 'autonad.pipeline.context'
local optstate = require 'autonad.pipeline.optstate'

local M = {}

local CKPT, LOG, DONE = 'supernet.ckpt', 'supernet_log.jsonl', 'supernet.json'

-- the log file cut to `bytes` (a resumed run drops iterations after its checkpoint)
local function truncate_log(path, bytes)
    local f = io.open(path, 'rb')
    local s = f and f:read('*a') or ''
    if f then f:close() end
    local out = assert(io.open(path .. '.tmp', 'wb'))
    out:write(s:sub(1, bytes))
    out:close()
    assert(os.rename(path .. '.tmp', path))
end

local function file_size(path)
    local f = io.open(path, 'rb')
    if not f then return 0 end
    local n = f:seek('end')
    f:close()
    return n
end

--- One single-path step on subnet a: forward (timed), loss, backward, and opt stepping exactly
--- a's views of the shared weights. A loss that is NaN or infinite is returned before the
--- backward, with nothing stepped. Returns loss, forward ms.
function M.step(net, opt, a, images, targets)
    net:set_arch(a)
    local t0 = progress.now()
    local logits = net:forward(images)
    local fwd_ms = (progress.now() - t0) * 1000
    local loss = net:loss(logits, targets)
    if loss ~= loss or loss == math.huge then return loss, fwd_ms end
    net:backward(net.dlogits)
    local P = net:params()
    local slices = {}
    for i, e in ipairs(P.list) do if e.view then slices[i] = e.view end end
    opt:step(slices)
    P:zero_grad()
    return loss, fwd_ms
end

--- Trains the supernet of ctx. opts.fresh ignores an existing checkpoint; opts.stop_after_epoch
--- stops early (tests of resume). Returns a summary table (also written to supernet.json).
function M.run(ctx, opts)
    opts = opts or {}
    local r, cfg = ctx.recipe, ctx.recipe.supernet
    local net, space = ctx:supernet(), ctx.space
    local P = net:params()
    local entries = P.list
    local values, grads = {}, {}
    for i, e in ipairs(entries) do values[i], grads[i] = e.value, e.grad end
    local opt = optim.AdamW(values, grads, { lr = cfg.lr, weight_decay = cfg.weight_decay })
    local loader = ctx:loader('train', cfg.batch, cfg.augment)
    local per_epoch = loader:num_batches()
    if per_epoch == 0 then error('autonad: the train split has fewer images than one batch (' .. cfg.batch .. ')', 0) end
    local total = per_epoch * cfg.epochs
    local sched = schedule.cosine({ base = cfg.lr, floor = cfg.min_lr,
        warmup = math.min(math.floor(cfg.warmup_epochs * per_epoch), total - 1), total = total })
    local sampler = autonad.rng(r.seed + 1)
    local log_path = ctx:path(LOG)
    local start_epoch, it = 1, 0
    local history = {}

    if not opts.fresh and context.exists(ctx:path(CKPT)) then
        local t, meta = ckpt.load(ctx:path(CKPT))
        P:load_values(t, 'w/', ctx:path(CKPT))
        optstate.unpack(opt, entries, meta.optimizer, t)
        sampler:set_state(meta.sampler_rng)
        net.rng:set_state(meta.net_rng)
        start_epoch, it, history = meta.epoch + 1, meta.iteration, meta.history or {}
        truncate_log(log_path, meta.log_bytes)
        ctx:say('[train-supernet] resuming after epoch %d (iteration %d) from %s', meta.epoch, it, ctx:path(CKPT))
    elseif opts.fresh or not context.exists(ctx:path(CKPT)) then
        truncate_log(log_path, 0)
    end

    net:set_training(true)
    local prog = progress.new('train-supernet', total, { quiet = ctx.quiet })
    prog:resume(it)
    local t_start = progress.now()
    local largest, smallest = arch.largest(space), arch.smallest(space)
    local stopped_early = false
    for epoch = start_epoch, cfg.epochs do
        local loss_sum, n = 0, 0
        local log = assert(io.open(log_path, 'ab'))
        for images, targets in loader:epoch(epoch) do
            local archs
            if cfg.sandwich then archs = { largest, smallest, arch.sample(space, sampler) }
            else archs = { arch.sample(space, sampler) } end
            opt.lr = sched.lr(it)
            for _, a in ipairs(archs) do
                local loss, fwd_ms = M.step(net, opt, a, images, targets)
                if loss ~= loss or loss == math.huge then
                    log:close()
                    error(string.format('autonad: the supernet loss became %s at iteration %d (epoch %d); ' ..
                        'the last good state is the checkpoint %s (lower supernet.lr?)', tostring(loss),
                        it + 1, epoch, ctx:path(CKPT)), 0)
                end
                log:write(json.encode({ iter = it + 1, epoch = epoch, arch = a, forward_ms = fwd_ms,
                    loss = loss, lr = opt.lr, batch = images:size(1) }), '\n')
                loss_sum, n = loss_sum + loss, n + 1
            end
            it = it + 1
            prog:step(1, { { 'epoch', epoch .. '/' .. cfg.epochs }, { 'loss', loss_sum / n }, { 'lr', opt.lr } })
        end
        log:close()
        local rec = { epoch = epoch, loss = loss_sum / math.max(n, 1), seconds = progress.now() - t_start,
            data_wait = loader:wait_time().epoch }
        if cfg.eval_every > 0 and epoch % cfg.eval_every == 0 then
            net:set_training(false)
            rec.val = {}
            for name, a in pairs({ largest = largest, smallest = smallest, middle = arch.middle(space) }) do
                rec.val[name] = require('autonad.pipeline.evaluate').subnet(ctx, net, a, 'val').table
            end
            net:set_training(true)
        end
        history[#history + 1] = rec
        ctx:log('supernet_epochs', rec)
        -- the checkpoint: everything needed to continue exactly from here
        local tensors = {}
        for name, v in pairs(P:named_values()) do tensors['w/' .. name] = v end
        local meta = { epoch = epoch, iteration = it, optimizer = optstate.pack(opt, entries, tensors),
            sampler_rng = sampler:state(), net_rng = net.rng:state(), log_bytes = file_size(log_path),
            history = history }
        ckpt.save(ctx:path(CKPT), tensors, meta)
        if (opts.stop_after_epoch and epoch >= opts.stop_after_epoch) or
            (cfg.time_limit and progress.now() - t_start >= cfg.time_limit and epoch < cfg.epochs) then
            stopped_early = epoch < cfg.epochs
            break
        end
    end
    net:set_training(false)
    loader:close()
    local summary = { epochs_done = history[#history] and history[#history].epoch or 0,
        iterations = it, history = history, complete = not stopped_early, checkpoint = ctx:path(CKPT),
        log = log_path }
    json.write(ctx:path(DONE), summary)
    return summary
end

return M
