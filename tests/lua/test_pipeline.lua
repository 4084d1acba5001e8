-- test_pipeline.lua: recipes (checked keys, defaults, overrides) and the supernet training
-- stage on generated data: the loss falls, every iteration is logged with its architecture
-- and forward time, and a run stopped after an epoch and resumed ends with exactly the
-- weights and log of an uninterrupted run.
local autonad = require 'autonad'
local recipe = require 'autonad.recipe'
local context = require 'autonad.pipeline.context'
local train = require 'autonad.pipeline.train_supernet'
local ckpt = require 'autonad.checkpoint'
local json = require 'autonad.json'
local T = require 'testing'

local here = debug.getinfo(1, 'S').source:match('^@(.*)/[^/]*$')

local tests = {}

local function tiny_recipe(dir, over)
    local r = {
        name = 'tiny', seed = 3, threads = 2, output = dir,
        data = { kind = 'generated', n = 40, size = { 32, 32 }, classes = { 1, 2 } },
        space = here .. '/fixtures/space_tiny.lua',
        supernet = { epochs = 2, batch = 4, lr = 2e-3, warmup_epochs = 0.5 },
    }
    for _, o in ipairs(over or {}) do recipe.set(r, o) end
    return (recipe.check(r))
end

local function tmpdir()
    local p = os.tmpname()
    os.remove(p)
    return p
end

function tests.unknown_recipe_key_is_named()
    T.errors(function() recipe.check({ supernet = { epocs = 3 } }) end,
        'recipe: supernet.epocs is not a recipe key')
    T.errors(function() recipe.check({ data = { size = 'big' } }) end,
        'recipe: data.size must be a list of numbers, got string big')
    T.errors(function() recipe.check({ task = 'detection' }) end, "task must be 'segmentation' or 'classification'")
end

function tests.defaults_are_filled_and_reported()
    local r, filled = recipe.check({ name = 'x' })
    T.eq(r.supernet.weight_decay, 0.05)
    T.eq(r.output, 'runs/x')
    local found = false
    for _, f in ipairs(filled) do found = found or f == 'supernet.weight_decay = 0.05' end
    T.ok(found, 'filled defaults list supernet.weight_decay')
end

function tests.overrides_edit_the_recipe()
    local r = recipe.check(recipe.set(recipe.set({}, 'search.latency_weight=2.5'), 'data.size={64,48}'))
    T.eq(r.search.latency_weight, 2.5)
    T.eq(r.data.size[2], 48)
    T.errors(function() recipe.set({}, 'nonsense') end, '--set expects key=value')
end

function tests.supernet_training_logs_and_learns()
    local dir = tmpdir()
    local ctx = context.new(tiny_recipe(dir, { 'supernet.epochs=3' }), { quiet = true })
    local s = train.run(ctx)
    T.eq(s.epochs_done, 3)
    T.ok(s.history[3].loss < s.history[1].loss, 'loss falls: ' .. s.history[1].loss .. ' -> ' .. s.history[3].loss)
    local n = 0
    for line in io.lines(dir .. '/supernet_log.jsonl') do
        local rec = json.decode(line)
        T.ok(rec.forward_ms > 0 and rec.arch.depth and rec.loss, 'log record')
        n = n + 1
    end
    T.eq(n, s.iterations)
    os.execute('rm -rf ' .. dir)
end

function tests.resume_ends_identical_to_an_uninterrupted_run()
    local a, b = tmpdir(), tmpdir()
    train.run(context.new(tiny_recipe(a), { quiet = true }))
    train.run(context.new(tiny_recipe(b), { quiet = true }), { stop_after_epoch = 1 })
    -- a new context, as after a restart of the process
    train.run(context.new(tiny_recipe(b), { quiet = true }))
    local wa, ma = ckpt.load(a .. '/supernet.ckpt')
    local wb, mb = ckpt.load(b .. '/supernet.ckpt')
    T.eq(ma.iteration, mb.iteration)
    local names = 0
    for name, t in pairs(wa) do
        T.all_near(wb[name], t, 0, name)
        names = names + 1
    end
    T.ok(names > 100)
    local function read(p) local f = io.open(p, 'rb'); local s = f:read('*a'); f:close(); return s end
    local la, lb = read(a .. '/supernet_log.jsonl'), read(b .. '/supernet_log.jsonl')
    -- identical records apart from the measured times
    T.eq(select(2, la:gsub('\n', '')), select(2, lb:gsub('\n', '')))
    T.eq(la:gsub('"forward_ms":[^,]*,', ''), lb:gsub('"forward_ms":[^,]*,', ''))
    os.execute('rm -rf ' .. a .. ' ' .. b)
end

function tests.finetune_resume_ends_identical()
    local finetune = require 'autonad.pipeline.finetune'
    local a, b = tmpdir(), tmpdir()
    local over = { 'supernet.epochs=1', 'finetune.epochs=3', 'finetune.batch=4' }
    local ca, cb = context.new(tiny_recipe(a, over), { quiet = true }), context.new(tiny_recipe(b, over), { quiet = true })
    train.run(ca)
    train.run(cb)
    finetune.run(ca, 'largest')
    finetune.run(cb, 'largest', { stop_after_epoch = 1 })
    finetune.run(context.new(tiny_recipe(b, over), { quiet = true }), 'largest')
    local sa = ckpt.load(a .. '/finetune_largest.state')
    local sb = ckpt.load(b .. '/finetune_largest.state')
    for name, t in pairs(sa) do T.all_near(sb[name], t, 0, name) end
    T.eq(json.read(a .. '/finetune_largest.json').best_val, json.read(b .. '/finetune_largest.json').best_val)
    os.execute('rm -rf ' .. a .. ' ' .. b)
end

return tests
