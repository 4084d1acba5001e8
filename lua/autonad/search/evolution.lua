-- autonad.search.evolution: AutoFormer's evolutionary search as AutoNAD runs it (reference
-- section 5), on the context of autonad.search. Defaults are the paper's settings.
--
-- 1. L_base: the mean latency of `baseline` prior-sampled subnets after `warmup` others.
-- 2. Generation 0: `population` random admissible subnets (prior-drawn operators).
-- 3. Each of `generations` rounds: the parents are the `parents` fittest candidates seen so
--    far (the previous parents and the latest population, as AutoFormer's running top-k);
--    `mutations` mutants of random parents and `crossovers` children of two distinct parents
--    (at most 10 tries per wanted candidate each), then random subnets fill the population.
--    Already evaluated or inadmissible candidates are skipped, never evaluated.
-- fitness = accuracy - latency_weight * latency / L_base. Total evaluations are about
-- warmup + baseline + population * (generations + 1). Checkpoints after L_base, after
-- generation 0 and after every round.
local arch = require 'autonad.arch'
local genetic = require 'autonad.search.genetic'
local common = require 'autonad.search.common'

local M = {}

M.defaults = {
    population = 50, parents = 10, mutations = 25, crossovers = 25, generations = 20,
    mutation_prob = 0.2, depth_prob = 0.4, latency_weight = 5,
    warmup = 40, baseline = 40,
    latency_base = false,   -- a number (ms) skips the baseline measurement
    random_tries = 100,     -- tries per wanted random subnet before giving up on filling
}

function M.run(ctx)
    local o, st, space, rng = ctx.options, ctx.state, ctx.space, ctx.rng
    local done = common.start(ctx, 'evolution')
    if done then return done end
    local archive = common.archive(ctx)
    local function sample() return arch.sample(space, rng, ctx.prior) end
    if not st.population then
        local first = archive:collect(o.population, o.population * o.random_tries, sample)
        if #first == 0 then
            error('autonad: search.evolution: no admissible architecture in '
                .. o.population * o.random_tries .. ' samples (check the constraints)', 0)
        end
        st.population = archive:evaluate(first, 0, st.l_base, o.latency_weight)
        st.parents, st.generation = {}, 0
        st.history = { common.progress(archive, 0, st.population) }
        ctx.log(st.history[1])
        common.checkpoint(ctx)
    end
    while st.generation < o.generations do
        local pool = {}
        for _, i in ipairs(st.parents) do pool[#pool + 1] = i end
        for _, i in ipairs(st.population) do pool[#pool + 1] = i end
        local ranked = archive:ranked(pool)
        local parents = {}
        for i = 1, math.min(o.parents, #ranked) do parents[i] = ranked[i] end
        st.parents = parents
        local function parent_arch(i) return archive.records[i].arch end
        local pending, kids = {}, {}
        archive:collect(o.mutations, 10 * o.mutations, function()
            return genetic.mutate(space, rng, ctx.prior, parent_arch(rng:choice(parents)), o)
        end, pending, kids)
        if #parents >= 2 then
            archive:collect(o.crossovers, 10 * o.crossovers, function()
                local a, b = genetic.two(rng, parents)
                return genetic.crossover(space, rng, parent_arch(a), parent_arch(b))
            end, pending, kids)
        end
        local n_gen = #kids
        local fill = math.max(0, o.population - #kids)
        archive:collect(fill, fill * o.random_tries, sample, pending, kids)
        st.generation = st.generation + 1
        st.population = archive:evaluate(kids, st.generation, st.l_base, o.latency_weight)
        local h = common.progress(archive, st.generation, st.population)
        h.offspring, h.random = n_gen, #kids - n_gen
        st.history[#st.history + 1] = h
        ctx.log(h)
        common.checkpoint(ctx)
    end
    st.done = common.result(archive, st.history, st.l_base)
    common.checkpoint(ctx)
    return st.done
end

return M
