-- autonad.cli: the `autonad` command (core/cli/main.c runs main(arg)).
--   autonad run RECIPE [--set key=value]... [--fresh] [--quiet]   every stage, resumable
--   autonad train-supernet RECIPE ...                              one stage
--   autonad data info PATH [--kind KIND] [--splits PREFIX]
--   autonad version | help
local M = {}

local USAGE = [[
usage: autonad <command> [arguments]

  run RECIPE             all stages of the recipe (resumes what a run directory holds)
  train-supernet RECIPE  single-path supernet training (logs every subnet's forward time)
  search RECIPE          latency-aware prior + the recipe's search strategy on the supernet
  finetune RECIPE [ARCH] fine-tune 'searched' (default), 'largest', 'smallest' or an arch file
  eval RECIPE [TAG]      test metrics, latency, parameters, FLOPs of a fine-tuned subnet
  latency RECIPE [TAG]   measured latency of a fine-tuned subnet (batch 1, the recipe's threads)
  latency RECIPE --check N   build the per-operator latency table and report its error
                         against measurement on N random subnets (median and worst)
  predict RECIPE IMAGE...    masks (PNG) or labels of images from the fine-tuned subnet
                         (--tag TAG, --out DIR)
  data info PATH         counts, sizes, mask histogram, unreadable files, duplicates
  version                the version and the BLAS in use
  help                   this text

options for RECIPE commands:
  --set key=value        override a recipe value (repeatable), e.g. --set supernet.epochs=2
  --fresh                ignore existing checkpoints in the run directory
  --quiet                no progress lines
  --output DIR           the run directory (default: the recipe's output, runs/<name>)
]]

local function fail(msg)
    io.stderr:write('autonad: ', msg, '\n')
    return 2
end

-- splits argv into positional arguments and options (--set may repeat)
local function parse(args, first)
    local pos, opts = {}, { set = {} }
    local i = first
    while i <= #args do
        local a = args[i]
        if a == '--set' then
            opts.set[#opts.set + 1] = args[i + 1] or error('autonad: --set needs key=value', 0)
            i = i + 1
        elseif a:match('^%-%-set=') then opts.set[#opts.set + 1] = a:sub(7)
        elseif a == '--fresh' or a == '--quiet' then opts[a:sub(3)] = true
        elseif a == '--output' or a == '--kind' or a == '--splits' or a == '--check' or a == '--tag' or a == '--out' then
            opts[a:sub(3)] = args[i + 1] or error('autonad: ' .. a .. ' needs a value', 0)
            i = i + 1
        elseif a:match('^%-%-') then error('autonad: unknown option ' .. a .. ' (see autonad help)', 0)
        else pos[#pos + 1] = a end
        i = i + 1
    end
    return pos, opts
end

local function load_context(pos, opts)
    if not pos[1] then error('autonad: this command needs a recipe file', 0) end
    local recipe_mod = require 'autonad.recipe'
    local overrides = opts.set
    if opts.output then overrides[#overrides + 1] = 'output=' .. opts.output end
    local r, filled = recipe_mod.load(pos[1], overrides)
    local ctx = require('autonad.pipeline.context').new(r, { quiet = opts.quiet })
    if not opts.quiet and #filled > 0 then
        io.stderr:write('[recipe] defaults filled in: ', table.concat(filled, '; '), '\n')
    end
    return ctx
end

local stages = {}

function stages.train_supernet(ctx, opts)
    local s = require('autonad.pipeline.train_supernet').run(ctx, { fresh = opts.fresh })
    local last = s.history[#s.history]
    print(string.format('train-supernet: %d epochs, %d iterations, final loss %.4f -> %s',
        s.epochs_done, s.iterations, last and last.loss or 0 / 0, s.checkpoint))
    return 0
end

function stages.search(ctx, opts)
    local s = require('autonad.pipeline.search').run(ctx, { fresh = opts.fresh })
    local b = s.best_result or {}
    print(string.format('search: %s, %d evaluations; best: accuracy %.2f, %.2f ms/image, %.2f M params -> %s',
        s.strategy, s.evaluations, b.accuracy or 0, b.latency or 0, (b.params or 0) / 1e6, ctx:path('search.json')))
    return 0
end

function stages.finetune(ctx, opts, which)
    local s = require('autonad.pipeline.finetune').run(ctx, which, { fresh = opts.fresh })
    print(string.format('finetune %s: best val %.4f at epoch %s -> %s', s.tag, s.best_val, tostring(s.best_epoch), s.weights))
    return 0
end

function stages.eval(ctx, opts, tag)
    local rep = require('autonad.pipeline.eval').run(ctx, tag)
    local m, seg = rep.metrics, ctx.recipe.task == 'segmentation'
    print(string.format('eval %s on %s: %s %.4f, latency %.2f ms (median, batch 1, %d threads), %.3f M params, %.3f GFLOPs -> %s',
        rep.tag, rep.split, seg and 'mIoU' or 'accuracy', (seg and m.miou or m.accuracy) or 0, rep.latency_ms.median,
        rep.latency_ms.threads, rep.params / 1e6, rep.flops / 1e9, ctx:path('metrics_' .. rep.tag .. '.json')))
    return 0
end

local commands = {}

commands['train-supernet'] = function(pos, opts) return stages.train_supernet(load_context(pos, opts), opts) end

commands.latency = function(pos, opts)
    local ctx = load_context(pos, opts)
    local lat = require 'autonad.latency'
    local r = ctx.recipe
    if opts.check then
        local n = tonumber(opts.check) or error('autonad: --check needs a number of subnets', 0)
        local tbl = lat.build_table(ctx.space, { input = r.data.size, batch = 1, threads = r.threads,
            in_channels = r.data.channels, classes = ctx:num_classes(),
            log = not opts.quiet and function(l) io.stderr:write(l, '\n') end or nil })
        lat.save(tbl, ctx:path('latency_table.json'))
        local res = lat.check(ctx.space, tbl, { count = n })
        print(string.format('latency predictor on %d random subnets: median error %.1f %%, worst %.1f %% -> %s',
            n, 100 * res.median, 100 * res.worst, ctx:path('latency_table.json')))
        return 0
    end
    local net, a = require('autonad.pipeline.eval').load_subnet(ctx, pos[2] or 'searched')
    local m = lat.measure(net, a, { input = r.data.size, batch = 1, threads = r.threads, warmup = 5, repeats = 30 })
    print(string.format('latency %s: median %.3f ms, min %.3f, p90 %.3f (batch 1, %dx%d, %d threads, %d runs)',
        pos[2] or 'searched', m.median, m.min, m.p90, r.data.size[1], r.data.size[2], r.threads, m.n))
    return 0
end

commands.predict = function(pos, opts)
    local ctx = load_context({ pos[1] }, opts)
    local paths = {}
    for i = 2, #pos do paths[#paths + 1] = pos[i] end
    if #paths == 0 then error('autonad: predict needs image files', 0) end
    local res, dir = require('autonad.pipeline.predict').run(ctx, paths, { tag = opts.tag, out = opts.out })
    for _, rec in ipairs(res) do
        print(rec.mask and (rec.image .. ' -> ' .. rec.mask) or (rec.image .. ': ' .. rec.class_name))
    end
    io.stderr:write('predict: ', #res, ' images -> ', dir, '\n')
    return 0
end

commands.search = function(pos, opts) return stages.search(load_context(pos, opts), opts) end
commands.finetune = function(pos, opts) return stages.finetune(load_context(pos, opts), opts, pos[2]) end
commands.eval = function(pos, opts) return stages.eval(load_context(pos, opts), opts, pos[2]) end

commands.run = function(pos, opts)
    local ctx = load_context(pos, opts)
    stages.train_supernet(ctx, opts)
    local which = ctx.recipe.finetune.arch
    if which == 'searched' then stages.search(ctx, opts) end
    stages.finetune(ctx, opts, which)
    stages.eval(ctx, opts, which:match('^[%w_]+$') and which or 'custom')
    local base = ctx.recipe.finetune.baseline
    if base then
        stages.finetune(ctx, opts, base)
        stages.eval(ctx, opts, base:match('^[%w_]+$') and base or 'custom')
    end
    return 0
end

commands.data = function(pos, opts)
    if pos[1] ~= 'info' or not pos[2] then return fail('usage: autonad data info PATH [--kind KIND] [--splits PREFIX]') end
    require('autonad.data').info(pos[2], { kind = opts.kind, splits = opts.splits })
    return 0
end

commands.version = function()
    local autonad = require 'autonad'
    print('autonad ' .. autonad.version)
    print('blas: ' .. autonad.blas_info())
    return 0
end

commands.help = function() io.write(USAGE); return 0 end

--- Runs the command line args (arg[1] is the command); returns the exit status.
function M.main(args)
    local cmd = args[1]
    if not cmd or cmd == '-h' or cmd == '--help' then io.write(USAGE); return cmd and 0 or 2 end
    local f = commands[cmd]
    if not f then return fail("unknown command '" .. cmd .. "' (see autonad help)") end
    local ok, pos, opts = pcall(parse, args, 2)
    if not ok then return fail(tostring(pos):gsub('^autonad: ', '')) end
    -- errors reach the user as their message; the Lua stack only with AUTONAD_TRACEBACK=1
    local ok2, rc = xpcall(function() return f(pos, opts) end, function(e)
        if os.getenv('AUTONAD_TRACEBACK') then return debug.traceback(tostring(e), 2) end
        local msg = tostring(e)
        if not msg:match('^autonad: ') then msg = 'autonad: ' .. msg .. '\n(AUTONAD_TRACEBACK=1 shows where)' end
        return msg
    end)
    if not ok2 then
        io.stderr:write(tostring(rc), '\n')
        return 1
    end
    return rc or 0
end

return M
