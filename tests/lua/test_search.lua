-- test_search.lua: the latency-aware prior (from a hand-made log, a JSON-lines file, a latency
-- callback; save/load) and the search strategies on the tiny space with a synthetic
-- deterministic fitness: reproducibility by seed, constraints, no duplicate evaluations,
-- evolution's progress, NSGA-II's front, resume from a checkpoint, a user strategy by path.
local autonad = require 'autonad'
local arch = require 'autonad.arch'
local json = require 'autonad.json'
local prior = require 'autonad.prior'
local search = require 'autonad.search'
local genetic = require 'autonad.search.genetic'
local nsga2 = require 'autonad.search.nsga2'
local cost = require 'autonad.supernet.cost'
local T = require 'testing'

local here = debug.getinfo(1, 'S').source:match('^@(.*)/[^/]*$')
local space = require('autonad.space').load(here .. '/fixtures/space_tiny.lua')

local tests = {}

-- synthetic, deterministic ------------------------------------------------------------------

local COST_OPTS = { input = { 32, 32 }, classes = 2 }
local function arch_cost(a) return cost.count(space, a, COST_OPTS) end
local CONV_GAIN = { ['1x1'] = 0, ['3x3'] = 0.3, ['5x5'] = 0.5, dil3x3 = 0.35, dw3x3 = 0.2 }
local OP_GAIN = { attention = 1.5, conv = 1.0, mlp = 0.3 }

local function synthetic(a)
    local acc, lat, c = 40, 0, arch_cost(a)
    for s = 1, #a.depth do
        acc = acc + a.width[s] / 16
        for b = 1, a.depth[s] do acc = acc + OP_GAIN[a.op[s][b]] + 0.4 * a.ratio[s][b] end
    end
    for i = 1, #a.decoder.conv do acc = acc + CONV_GAIN[a.decoder.conv[i]] end
    for i = 1, #a.decoder.pool do acc = acc + 0.1 * a.decoder.pool[i] end
    lat = c.macs / 2e6
    for s = 1, #a.depth do for b = 1, a.depth[s] do if a.op[s][b] == 'attention' then lat = lat + 0.4 end end end
    return { accuracy = acc, latency = lat, params = c.params, flops = c.flops }
end

local CONSTRAINTS = { params = { 2.2e5, 3.6e5 } }
local SMALL = {
    evolution = { population = 16, parents = 4, mutations = 8, crossovers = 8, generations = 6,
        warmup = 3, baseline = 5 },
    random = { samples = 60, batch = 16, warmup = 3, baseline = 5 },
    nsga2 = { population = 16, mutations = 8, crossovers = 8, generations = 6, warmup = 3, baseline = 5 },
}

local function copy_opts(t) local o = {}; for k, v in pairs(t or {}) do o[k] = v end; return o end

-- a context whose evaluate records every architecture it is asked for
local function context(name, seed, extra)
    extra = extra or {}
    local calls = {}
    local ctx = {
        space = space, rng = autonad.rng(seed), prior = extra.prior,
        options = extra.options or copy_opts(SMALL[name]),
        constraints = CONSTRAINTS, cost = arch_cost,
        evaluate = function(archs)
            local out = {}
            for i, a in ipairs(archs) do
                arch.validate(space, a)
                calls[#calls + 1] = { key = arch.key(a), arch = a }
                out[i] = synthetic(a)
            end
            return out
        end,
        state = extra.state, checkpoint = extra.checkpoint,
    }
    return ctx, calls
end

local function n_baseline(name) return SMALL[name].warmup + SMALL[name].baseline end

local function run(name, seed, extra)
    local ctx, calls = context(name, seed, extra)
    return search.run(name, ctx), calls, ctx
end

local STRATEGIES = { 'evolution', 'random', 'nsga2' }

-- the prior ---------------------------------------------------------------------------------

local function rec(ms, ops1, op2, conv1)
    local a = arch.smallest(space)
    a.depth[1] = #ops1
    a.op[1], a.ratio[1] = {}, {}
    for b, o in ipairs(ops1) do a.op[1][b], a.ratio[1][b] = o, 2 end
    a.op[2][1] = op2
    a.decoder.conv[1] = conv1
    return { arch = a, forward_ms = ms, step = 1 }
end

-- the three fastest (ms 1, 2, 3) count; the two slow ones are all-mlp / 3x3 and must not
local LOG = {
    rec(9.0, { 'mlp', 'mlp' }, 'mlp', '3x3'),
    rec(2.0, { 'attention' }, 'conv', '1x1'),
    rec(1.0, { 'attention', 'mlp' }, 'conv', '1x1'),
    rec(8.0, { 'mlp' }, 'mlp', '3x3'),
    rec(3.0, { 'conv' }, 'attention', '5x5'),
}

function tests.prior_from_log_counts_the_fastest()
    local p = prior.from_log(space, LOG, { top = 3 })
    prior.check(space, p)
    local u = 0.1 / 3
    T.near(p.op[1][1].attention, 0.9 * 2 / 3 + u, 1e-12)
    T.near(p.op[1][1].conv, 0.9 * 1 / 3 + u, 1e-12)
    T.near(p.op[1][1].mlp, u, 1e-12, 'slow records do not count')
    -- block 2 of stage 1: one counted record has it (mlp)
    T.near(p.op[1][2].mlp, 0.9 + u, 1e-12)
    T.near(p.op[1][2].attention, u, 1e-12)
    T.near(p.op[2][1].conv, 0.9 * 2 / 3 + u, 1e-12)
    T.near(p.op[2][1].attention, 0.9 / 3 + u, 1e-12)
    -- stage 2, block 2: no counted record reaches it -> uniform
    for _, o in ipairs({ 'attention', 'conv', 'mlp' }) do T.near(p.op[2][2][o], 1 / 3, 1e-12) end
    -- decoder slot 1 over 5 types; slot 2 all 1x1 (smallest)
    T.near(p.conv[1]['1x1'], 0.9 * 2 / 3 + 0.02, 1e-12)
    T.near(p.conv[1]['5x5'], 0.9 / 3 + 0.02, 1e-12)
    T.near(p.conv[1]['3x3'], 0.02, 1e-12)
    T.near(p.conv[2]['1x1'], 0.92, 1e-12)
    -- all records, other mix
    local q = prior.from_log(space, LOG, { mix = 0.5 })
    T.near(q.op[1][1].mlp, 0.5 * 2 / 5 + 0.5 / 3, 1e-12)
    T.near(q.conv[1]['3x3'], 0.5 * 2 / 5 + 0.1, 1e-12)
end

function tests.prior_from_log_ties_keep_log_order()
    local log = { rec(1, { 'mlp' }, 'mlp', '1x1'), rec(1, { 'conv' }, 'mlp', '1x1') }
    local p = prior.from_log(space, log, { top = 1, mix = 1 })
    T.eq(p.op[1][1].mlp, 1)
    T.eq(p.op[1][1].conv, 0)
end

function tests.prior_from_jsonl_file_and_errors()
    local path = os.tmpname()
    local f = io.open(path, 'w')
    for _, r in ipairs(LOG) do f:write(json.encode(r), '\n') end
    f:write('\n')
    f:close()
    local a = prior.from_log(space, LOG, { top = 3 })
    local b = prior.from_log(space, path, { top = 3 })
    T.eq(json.encode(b), json.encode(a))
    f = io.open(path, 'a')
    f:write('{"arch": {"depth": [1,\n')
    f:close()
    T.errors(function() prior.from_log(space, path) end, 'autonad: prior: ' .. path .. ':7: ')
    f = io.open(path, 'w')
    f:write(json.encode(LOG[1]), '\n[1, 2]\n')
    f:close()
    T.errors(function() prior.read_log(path) end, 'autonad: prior: ' .. path .. ':2: not a JSON object')
    os.remove(path)
    local bad = rec(1, { 'transformer' }, 'mlp', '1x1')
    T.errors(function() prior.from_log(space, { bad }) end,
        'autonad: prior.from_log: record 1: op[1][1] = transformer is not in the space')
    T.errors(function() prior.from_log(space, { { arch = bad.arch } }) end, 'forward_ms')
end

function tests.prior_from_table_prefers_cheap_choices()
    local OPC = { attention = 3, conv = 2, mlp = 1 }
    local seen_decoder = 0
    local p = prior.from_table(space, function(stage, b, choice)
        if stage == 'decoder' then
            seen_decoder = seen_decoder + 1
            return choice == '1x1' and 1 or 2
        end
        return OPC[choice] * stage
    end, { temperature = 1, mix = 1 })
    prior.check(space, p)
    T.eq(seen_decoder, 10 * 5)
    local z = math.exp(0) + math.exp(-1) + math.exp(-2)
    T.near(p.op[1][1].mlp, 1 / z, 1e-12)
    T.near(p.op[1][1].attention, math.exp(-2) / z, 1e-12)
    T.near(p.op[2][1].attention, math.exp(-4) / (1 + math.exp(-2) + math.exp(-4)), 1e-12)
    T.near(p.conv[3]['1x1'], 1 / (1 + 4 * math.exp(-1)), 1e-12)
    -- default: relative temperature and the 0.9 / 0.1 mix; order still by cost
    local q = prior.from_table(space, function(_, _, c) return OPC[c] or 1 end)
    T.ok(q.op[1][1].mlp > q.op[1][1].conv and q.op[1][1].conv > q.op[1][1].attention)
    T.near(q.conv[1]['5x5'], 0.2, 1e-12, 'equal costs give uniform')
    T.errors(function() prior.from_table(space, function() return -1 end) end, 'cost(1, 1, attention) = -1')
end

function tests.prior_save_load_and_uniform()
    local p = prior.from_log(space, LOG, { top = 3 })
    local path = os.tmpname()
    prior.save(path, p)
    T.eq(json.encode(prior.load(path, space)), json.encode(p))
    local u = prior.uniform(space)
    prior.check(space, u)
    T.near(u.op[2][2].conv, 1 / 3, 1e-15)
    T.near(u.conv[10].dw3x3, 0.2, 1e-15)
    u.conv[4]['3x3'] = 0.5
    prior.save(path, u)
    T.errors(function() prior.load(path, space) end, 'autonad: prior ' .. path .. ': conv[4] sums to')
    os.remove(path)
end

-- genetic operators -------------------------------------------------------------------------

function tests.mutation_and_crossover()
    local rng = autonad.rng(3)
    local pr = prior.uniform(space)
    local a = arch.largest(space)
    T.eq(arch.key(genetic.mutate(space, rng, pr, a, { mutation_prob = 0, depth_prob = 0 })), arch.key(a))
    local depths, ops = {}, {}
    for _ = 1, 200 do
        local m = genetic.mutate(space, rng, pr, a, {})
        arch.validate(space, m)
        depths[m.depth[1]] = true
        ops[m.op[1][1]] = true
    end
    T.ok(depths[1] and depths[2] and ops.conv and ops.mlp, 'mutation explores depth and operators')
    T.eq(arch.key(a), arch.key(arch.largest(space)), 'parent unchanged')
    -- only-mlp prior: every re-drawn operator is mlp
    local mlp = prior.from_table(space, function(_, _, c) return c == 'mlp' and 0 or 1e9 end, { mix = 1, temperature = 1 })
    local m = genetic.mutate(space, rng, mlp, a, { mutation_prob = 1, depth_prob = 1 })
    for s = 1, #m.op do for b = 1, m.depth[s] do T.eq(m.op[s][b], 'mlp') end end
    -- crossover: stage 1 depths differ -> p1's stage 1; decoder genes from both parents
    local p1, p2 = arch.largest(space), arch.smallest(space)
    p2.depth[2], p2.ratio[2], p2.op[2] = 2, { 2, 2 }, { 'mlp', 'mlp' }
    local from1, from2 = 0, 0
    for _ = 1, 50 do
        local c = genetic.crossover(space, rng, p1, p2)
        arch.validate(space, c)
        T.eq(json.encode(c.op[1]), json.encode(p1.op[1]))
        T.eq(c.depth[1], 2)
        for i = 1, 10 do
            if c.decoder.conv[i] == p1.decoder.conv[i] then from1 = from1 + 1 else from2 = from2 + 1 end
        end
        for b = 1, 2 do T.ok(c.op[2][b] == p1.op[2][b] or c.op[2][b] == 'mlp') end
    end
    T.ok(from1 > 150 and from2 > 150, 'decoder genes mixed: ' .. from1 .. ' / ' .. from2)
end

-- strategies --------------------------------------------------------------------------------

function tests.strategies_reproducible_by_seed()
    for _, name in ipairs(STRATEGIES) do
        local r1, c1 = run(name, 7)
        local r2, c2 = run(name, 7)
        local _, c3 = run(name, 8)
        T.eq(json.encode(r1), json.encode(r2), name .. ' same seed, same result')
        T.eq(#c1, #c2)
        local same = #c1 == #c3
        for i = 1, math.min(#c1, #c3) do if c1[i].key ~= c3[i].key then same = false end end
        T.ok(not same, name .. ': another seed evaluates other architectures')
    end
end

function tests.strategies_respect_constraints_and_never_repeat()
    for _, name in ipairs(STRATEGIES) do
        local res, calls = run(name, 11)
        local seen, n = {}, 0
        for i = n_baseline(name) + 1, #calls do
            local c = calls[i]
            T.ok(not seen[c.key], name .. ': evaluated twice: ' .. c.key)
            seen[c.key] = true
            local p = arch_cost(c.arch).params
            T.ok(p >= CONSTRAINTS.params[1] and p <= CONSTRAINTS.params[2], name .. ': params ' .. p)
            n = n + 1
        end
        T.eq(res.evaluated, n, name .. ': evaluated count')
        T.ok(seen[arch.key(res.best)], name .. ': best was evaluated')
        T.eq(json.encode(res.best_result), json.encode(synthetic(res.best)))
        if name ~= 'random' then
            T.eq(n, SMALL[name].population * (SMALL[name].generations + 1), name .. ': full generations')
        else
            T.eq(n, SMALL.random.samples)
        end
    end
end

function tests.latency_base_and_fitness()
    local res, calls = run('evolution', 5)
    local o = SMALL.evolution
    local sum = 0
    for i = o.warmup + 1, o.warmup + o.baseline do sum = sum + synthetic(calls[i].arch).latency end
    T.near(res.latency_base, sum / o.baseline, 1e-12)
    local r = res.best_result
    T.near(res.best_fitness, r.accuracy - 5 * r.latency / res.latency_base, 1e-12)
    -- best really is the fittest evaluated candidate
    for i = n_baseline('evolution') + 1, #calls do
        local s = synthetic(calls[i].arch)
        T.ok(s.accuracy - 5 * s.latency / res.latency_base <= res.best_fitness + 1e-12)
    end
    -- a given latency_base skips the measurement
    local opts = copy_opts(SMALL.evolution)
    opts.latency_base = 2.5
    local res2, calls2 = run('evolution', 5, { options = opts })
    T.eq(res2.latency_base, 2.5)
    T.eq(#calls2, SMALL.evolution.population * (SMALL.evolution.generations + 1))
end

function tests.evolution_improves_over_generations()
    local opts = copy_opts(SMALL.evolution)
    opts.generations = 10
    local res, _, ctx = run('evolution', 21, { options = opts })
    local h = res.history
    T.eq(#h, 11)
    for g = 2, #h do T.ok(h[g].best_fitness >= h[g - 1].best_fitness, 'best never drops') end
    T.ok(h[#h].best_fitness > h[1].best_fitness + 0.5,
        string.format('best fitness %.3f -> %.3f', h[1].best_fitness, h[#h].best_fitness))
    T.ok(h[#h].mean_fitness > h[1].mean_fitness, 'the population got better on average')
    -- the parents of the last round are the fittest of everything evaluated before it
    -- (AutoFormer's running top-k, not just the latest population's)
    local recs, before = ctx.state.evaluated, {}
    for i, r in ipairs(recs) do if r.generation < opts.generations then before[#before + 1] = i end end
    table.sort(before, function(a, b)
        if recs[a].fitness ~= recs[b].fitness then return recs[a].fitness > recs[b].fitness end
        return a < b
    end)
    T.eq(json.encode(ctx.state.parents), json.encode({ unpack(before, 1, opts.parents) }))
    -- same budget, random search from the same seed does worse
    local rnd = run('random', 21, { options = { samples = 16 * 11, batch = 16, warmup = 3, baseline = 5 } })
    T.ok(res.best_fitness > rnd.best_fitness,
        string.format('evolution %.3f vs random %.3f', res.best_fitness, rnd.best_fitness))
end

function tests.evolution_uses_the_prior()
    local mlp = prior.from_table(space, function(_, _, c) return c == 'mlp' and 0 or 1e9 end, { mix = 1, temperature = 1 })
    local _, calls = run('evolution', 4, { prior = mlp })
    for _, c in ipairs(calls) do
        for s = 1, 4 do for b = 1, c.arch.depth[s] do T.eq(c.arch.op[s][b], 'mlp') end end
    end
end

function tests.nsga2_front_is_non_dominated()
    local res, calls = run('nsga2', 13)
    T.ok(#res.pareto >= 2, 'front of ' .. #res.pareto)
    local function obj(r) return { -r.accuracy, r.latency, r.params } end
    for i, p in ipairs(res.pareto) do
        T.eq(json.encode(p.result), json.encode(synthetic(p.arch)))
        for j, q in ipairs(res.pareto) do
            if i ~= j then T.ok(not nsga2.dominates(obj(q.result), obj(p.result)), 'front member dominated') end
        end
        if i > 1 then T.ok(p.result.latency >= res.pareto[i - 1].result.latency, 'sorted by latency') end
    end
    -- every evaluated candidate is on the front or dominated by / equal to a member of it
    for i = n_baseline('nsga2') + 1, #calls do
        local o = obj(synthetic(calls[i].arch))
        local covered = false
        for _, p in ipairs(res.pareto) do
            local q = obj(p.result)
            if nsga2.dominates(q, o) or (q[1] == o[1] and q[2] == o[2] and q[3] == o[3]) then covered = true end
        end
        T.ok(covered, 'candidate ' .. i .. ' neither on nor dominated by the front')
    end
    local best_f = -math.huge
    for _, p in ipairs(res.pareto) do best_f = math.max(best_f, p.fitness) end
    T.eq(res.best_fitness, best_f)
    local h = res.history
    T.ok(h[#h].best_fitness >= h[1].best_fitness)
end

function tests.nsga2_sort_and_crowding()
    local function r(acc, lat, params) return { result = { accuracy = acc, latency = lat }, params = params } end
    local recs = { r(10, 1, 1), r(9, 2, 2), r(11, 2, 1), r(10, 1, 1), r(5, 5, 5) }
    local fronts = nsga2.sort(recs, { 1, 2, 3, 4, 5 })
    T.eq(json.encode(fronts), '[[1,3,4],[2],[5]]')
    local d = nsga2.crowding(recs, { 1, 3, 4 })
    T.eq(d[3], math.huge)
end

local function resume_case(name, crash_at)
    local full, full_calls = run(name, 31)
    local snapshot, n = nil, 0
    local ctx, calls1 = context(name, 31)
    ctx.checkpoint = function()
        n = n + 1
        snapshot = json.encode(ctx.state)
        if n == crash_at then error({ crash = true }) end
    end
    local ok, err = pcall(search.run, name, ctx)
    T.ok(not ok and type(err) == 'table' and err.crash, name .. ': the run crashed at checkpoint ' .. crash_at)
    -- a fresh process: state from disk, a generator seeded differently (restored from state)
    local ctx2, calls2 = context(name, 999, { state = json.decode(snapshot) })
    local res = search.run(name, ctx2)
    T.eq(json.encode(res), json.encode(full), name .. ': resumed result')
    T.eq(#calls1 + #calls2, #full_calls, name .. ': no evaluation lost or repeated')
    for i, c in ipairs(calls2) do T.eq(c.key, full_calls[#calls1 + i].key) end
    -- resuming a finished run returns its result without evaluating
    local ctx3, calls3 = context(name, 5, { state = json.decode(json.encode(ctx2.state)) })
    T.eq(json.encode(search.run(name, ctx3)), json.encode(full))
    T.eq(#calls3, 0)
end

function tests.resume_gives_the_identical_result()
    resume_case('evolution', 4)   -- after L_base, generation 0, rounds 1 and 2
    resume_case('evolution', 1)   -- right after L_base
    resume_case('random', 3)
    resume_case('nsga2', 5)
end

function tests.user_strategy_from_a_file_outside_the_tree()
    local tmp = os.tmpname()   -- /tmp/lua_XXXXXX: outside the source tree and package.path
    local path = tmp .. '.lua'
    -- the example of docs/strategies.md, so that the documented example is known to work
    local df = assert(io.open(here .. '/../../docs/strategies.md'))
    local doc = df:read('*a')
    df:close()
    local example = doc:match('```lua\n(%-%- my_strategy%.lua.-)```')
    T.ok(example, 'docs/strategies.md holds the example')
    local f = assert(io.open(path, 'w'))
    f:write(example)
    f:close()
    local logged = 0
    local ctx, calls = context('random', 3, { options = { samples = 7 } })
    ctx.log = function() logged = logged + 1 end
    local res = search.run(path, ctx)
    T.eq(#calls, 7)
    T.eq(logged, 7)
    arch.validate(space, res.best)
    T.ok(ctx.admissible(res.best))
    local ctx2 = context('random', 3, { options = { sampels = 7 } })
    T.errors(function() search.run(path, ctx2) end, 'unknown option sampels (known: samples)')
    os.remove(path)
    os.remove(tmp)
end

function tests.loader_and_context_errors()
    T.errors(function() search.load('annealing') end, 'no strategy "annealing" (known:')
    T.errors(function() search.load('/nonexistent/strategy.lua') end, 'cannot load strategy /nonexistent/strategy.lua')
    T.errors(function() search.load({}) end, 'must return a table with a run(ctx) function')
    T.eq(search.load('nsga2'), nsga2)
    local ctx = context('evolution', 1, { options = { populaton = 3 } })
    T.errors(function() search.run('evolution', ctx) end, 'unknown option populaton')
    ctx = context('evolution', 1)
    ctx.cost = nil
    T.errors(function() search.run('evolution', ctx) end, 'ctx.constraints needs ctx.cost')
    ctx = context('random', 1)
    ctx.evaluate = function() return {} end
    T.errors(function() search.run('random', ctx) end, 'ctx.evaluate must return one result per architecture')
    ctx = context('random', 1)
    ctx.constraints = { params = { 1e9, nil } }
    T.errors(function() search.run('random', ctx) end, 'no admissible architecture')
end

return tests
