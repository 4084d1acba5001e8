-- autonad.pipeline.search: the architecture search stage (reference sections 4-5). It loads
-- the trained supernet, builds the latency-aware prior from the supernet-training log (or
-- another prior), and runs the recipe's strategy with a context whose evaluate() scores
-- candidates on the validation split with inherited weights (no fine-tuning): accuracy =
-- mIoU % (or accuracy %), latency = measured milliseconds per validation image. The
-- strategy's state is checkpointed to search_state.json, so an interrupted search resumes
-- to the same result. Writes prior.json, search.jsonl (progress) and search.json (result).
local autonad = require 'autonad'
local json = require 'autonad.json'
local prior_mod = require 'autonad.prior'
local search = require 'autonad.search'
local cost = require 'autonad.supernet.cost'
local progress = require 'autonad.pipeline.progress'
local evaluate = require 'autonad.pipeline.evaluate'
local finetune = require 'autonad.pipeline.finetune'
local context = require 'autonad.pipeline.context'

local M = {}

--- The prior the recipe asks for (prior.kind), saved to prior.json.
function M.prior(ctx)
    local p, r = ctx.recipe.prior, ctx.recipe
    local pr
    if p.kind == 'uniform' then pr = prior_mod.uniform(ctx.space)
    elseif p.kind == 'latency_log' then
        local log = ctx:path('supernet_log.jsonl')
        if not context.exists(log) then error('autonad: no supernet log ' .. log .. ' (run train-supernet first)', 0) end
        pr = prior_mod.from_log(ctx.space, log, { top = p.top, mix = p.mix })
    elseif p.kind == 'latency_table' then
        local lat = require 'autonad.latency'
        local net = finetune.load_supernet(ctx)
        local tbl = lat.build_table(ctx.space, { input = r.data.size, batch = 1, threads = r.threads,
            in_channels = r.data.channels, classes = ctx:num_classes(), net = net })
        lat.save(tbl, ctx:path('latency_table.json'))
        pr = prior_mod.from_table(ctx.space, lat.cost_function(tbl, ctx.space), { mix = p.mix })
    else
        error("autonad: recipe: prior.kind must be 'uniform', 'latency_log' or 'latency_table', got '" .. p.kind .. "'", 0)
    end
    prior_mod.save(ctx:path('prior.json'), pr)
    return pr
end

--- Runs the search; returns the strategy's result (also in search.json).
function M.run(ctx, opts)
    opts = opts or {}
    local r, cfg = ctx.recipe, ctx.recipe.search
    local net = finetune.load_supernet(ctx)
    net:set_training(false)
    net:set_grad_enabled(false)
    local head = r.task == 'segmentation' and 'seg' or 'cls'
    local state_path = ctx:path('search_state.json')
    local state = {}
    if not opts.fresh and context.exists(state_path) then
        state = json.read(state_path)
        ctx:say('[search] resuming from %s', state_path)
    end
    local batches -- the validation images, decoded once
    -- the expected number of evaluations, for the time-left estimate (evolution-like options)
    local o = cfg.options or {}
    local expect = (o.warmup or 0) + (o.baseline or 0) + (o.population or 0) * ((o.generations or 0) + 1)
    local prog = progress.new('search', math.max(expect, 1), { quiet = ctx.quiet })
    local evaluated = 0
    local sctx = {
        space = ctx.space,
        rng = autonad.rng(r.seed + 2),
        prior = M.prior(ctx),
        options = cfg.options or {},
        constraints = { params = { cfg.params[1], cfg.params[2] } },
        state = state,
        cost = function(a)
            return cost.count(ctx.space, a, { in_channels = r.data.channels, classes = ctx:num_classes(),
                head = head, input = r.data.size })
        end,
        evaluate = function(archs)
            batches = batches or evaluate.cache(ctx, 'val', 8, cfg.val_images)
            local out = {}
            for i, a in ipairs(archs) do
                local ev = evaluate.subnet(ctx, net, a, 'val', { batches = batches })
                local s = ev.summary
                local c = cost.count(ctx.space, a, { in_channels = r.data.channels, classes = ctx:num_classes(),
                    head = head, input = r.data.size })
                out[i] = { accuracy = 100 * (s.miou or s.accuracy or 0), latency = 1000 * ev.seconds / ev.images,
                    params = c.params, flops = c.flops }
                evaluated = evaluated + 1
                prog.total = math.max(prog.total, evaluated)
                prog:step(1, { { 'candidate', evaluated }, { 'acc', out[i].accuracy }, { 'ms', out[i].latency } })
            end
            return out
        end,
        log = function(t)
            ctx:log('search', t)
            if t.generation and not ctx.quiet then
                io.stderr:write(string.format('[search] generation %s  best fitness %s\n', tostring(t.generation),
                    tostring(t.best_fitness)))
            end
        end,
    }
    local strategy = search.load(cfg.strategy)
    if strategy.defaults and strategy.defaults.latency_weight ~= nil and sctx.options.latency_weight == nil then
        sctx.options.latency_weight = cfg.latency_weight
    end
    sctx.checkpoint = function() json.write(state_path, sctx.state) end
    if opts.stop_after_evaluations then
        -- tests: simulate an interruption after n evaluations (the state is as last checkpointed)
        local raw, n = sctx.evaluate, 0
        sctx.evaluate = function(archs)
            n = n + #archs
            if n > opts.stop_after_evaluations then error('autonad: interrupted (test)', 0) end
            return raw(archs)
        end
    end
    local result = search.run(strategy, sctx)
    local out = { best = result.best, best_result = result.best_result, pareto = result.pareto,
        strategy = type(cfg.strategy) == 'string' and cfg.strategy or 'custom', evaluations = result.evaluated or evaluated,
        latency_base = result.latency_base, history = result.history }
    json.write(ctx:path('search.json'), out)
    return out
end

return M
