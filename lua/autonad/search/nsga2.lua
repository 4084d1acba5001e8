-- autonad.search.nsga2: multi-objective search (NSGA-II: Deb et al. 2002) maximising accuracy
-- and minimising latency and parameters, with the evolution's mutation and crossover.
--
-- Generation 0: `population` random admissible subnets. Each round: `mutations` mutants of
-- and `crossovers` children of parents picked by binary tournament (lower non-domination rank
-- wins, then larger crowding distance), random subnets filling any shortfall; then parents and
-- offspring together are sorted into non-dominated fronts and the next population is filled
-- front by front, the last front cut by crowding distance. Duplicates and inadmissible
-- candidates are never evaluated.
-- Returns pareto: the non-dominated set of EVERY candidate evaluated (a superset-quality
-- archive of the final population's first front), as { arch, result } sorted by latency; and
-- best: the member of that front with the highest scalar fitness
--   accuracy - latency_weight * latency / L_base
-- (the evolution's; L_base measured the same way), which is also the fittest candidate overall
-- since a candidate that dominates another has at least its fitness.
local arch = require 'autonad.arch'
local genetic = require 'autonad.search.genetic'
local common = require 'autonad.search.common'

local M = {}

M.defaults = {
    population = 50, mutations = 25, crossovers = 25, generations = 20,
    mutation_prob = 0.2, depth_prob = 0.4, latency_weight = 5,
    warmup = 40, baseline = 40, latency_base = false, random_tries = 100,
}

-- objectives, all minimised
local function objectives(r) return { -r.result.accuracy, r.result.latency, r.params } end

--- true when objective vector a dominates b (no worse everywhere, better somewhere).
function M.dominates(a, b)
    local better = false
    for m = 1, #a do
        if a[m] > b[m] then return false end
        if a[m] < b[m] then better = true end
    end
    return better
end

--- Fronts of the record indices idx (first front first; input order kept inside a front).
function M.sort(records, idx)
    local obj, dominated_by, count, fronts = {}, {}, {}, {}
    for _, i in ipairs(idx) do obj[i] = objectives(records[i]); dominated_by[i] = {}; count[i] = 0 end
    local first = {}
    for _, i in ipairs(idx) do
        for _, j in ipairs(idx) do
            if i ~= j then
                if M.dominates(obj[i], obj[j]) then dominated_by[i][#dominated_by[i] + 1] = j
                elseif M.dominates(obj[j], obj[i]) then count[i] = count[i] + 1 end
            end
        end
        if count[i] == 0 then first[#first + 1] = i end
    end
    local front, pos = first, {}
    for k, i in ipairs(idx) do pos[i] = k end
    while #front > 0 do
        fronts[#fronts + 1] = front
        local nxt = {}
        for _, i in ipairs(front) do
            for _, j in ipairs(dominated_by[i]) do
                count[j] = count[j] - 1
                if count[j] == 0 then nxt[#nxt + 1] = j end
            end
        end
        table.sort(nxt, function(a, b) return pos[a] < pos[b] end)
        front = nxt
    end
    return fronts
end

--- Crowding distance of each index in front (a map index -> distance; boundaries infinite).
function M.crowding(records, front)
    local d, obj = {}, {}
    for _, i in ipairs(front) do d[i] = 0; obj[i] = objectives(records[i]) end
    for m = 1, 3 do
        local s = {}
        for k, i in ipairs(front) do s[k] = i end
        table.sort(s, function(a, b)
            if obj[a][m] ~= obj[b][m] then return obj[a][m] < obj[b][m] end
            return a < b
        end)
        local lo, hi = obj[s[1]][m], obj[s[#s]][m]
        d[s[1]], d[s[#s]] = math.huge, math.huge
        if hi > lo then
            for k = 2, #s - 1 do d[s[k]] = d[s[k]] + (obj[s[k + 1]][m] - obj[s[k - 1]][m]) / (hi - lo) end
        end
    end
    return d
end

-- the next population from idx: whole fronts, the last one cut by crowding distance
local function survivors(records, idx, n)
    local out, rank, crowd = {}, {}, {}
    for r, front in ipairs(M.sort(records, idx)) do
        local d = M.crowding(records, front)
        for _, i in ipairs(front) do rank[i], crowd[i] = r, d[i] end
        if #out + #front <= n then
            for _, i in ipairs(front) do out[#out + 1] = i end
        elseif #out < n then
            local s = {}
            for k, i in ipairs(front) do s[k] = i end
            table.sort(s, function(a, b)
                if d[a] ~= d[b] then return d[a] > d[b] end
                return a < b
            end)
            for k = 1, n - #out do out[#out + 1] = s[k] end
        end
    end
    return out, rank, crowd
end

function M.run(ctx)
    local o, st, space, rng = ctx.options, ctx.state, ctx.space, ctx.rng
    local done = common.start(ctx, 'nsga2')
    if done then return done end
    local archive = common.archive(ctx)
    local recs = archive.records
    local function sample() return arch.sample(space, rng, ctx.prior) end
    if not st.population then
        local first = archive:collect(o.population, o.population * o.random_tries, sample)
        if #first == 0 then
            error('autonad: search.nsga2: no admissible architecture in '
                .. o.population * o.random_tries .. ' samples (check the constraints)', 0)
        end
        st.population = archive:evaluate(first, 0, st.l_base, o.latency_weight)
        st.generation = 0
        st.history = { common.progress(archive, 0, st.population) }
        ctx.log(st.history[1])
        common.checkpoint(ctx)
    end
    while st.generation < o.generations do
        local pop, rank, crowd = survivors(recs, st.population, #st.population)
        local function tournament()
            local a, b = genetic.two(rng, pop)
            if rank[a] ~= rank[b] then return rank[a] < rank[b] and a or b end
            if crowd[a] ~= crowd[b] then return crowd[a] > crowd[b] and a or b end
            return math.min(a, b)
        end
        local pending, kids = {}, {}
        archive:collect(o.mutations, 10 * o.mutations, function()
            return genetic.mutate(space, rng, ctx.prior, recs[tournament()].arch, o)
        end, pending, kids)
        archive:collect(o.crossovers, 10 * o.crossovers, function()
            local a, b = tournament(), tournament()
            return genetic.crossover(space, rng, recs[a].arch, recs[b].arch)
        end, pending, kids)
        local n_gen = #kids
        local fill = math.max(0, o.mutations + o.crossovers - #kids)
        archive:collect(fill, fill * o.random_tries, sample, pending, kids)
        st.generation = st.generation + 1
        local new = archive:evaluate(kids, st.generation, st.l_base, o.latency_weight)
        local all = {}
        for _, i in ipairs(pop) do all[#all + 1] = i end
        for _, i in ipairs(new) do all[#all + 1] = i end
        st.population = survivors(recs, all, o.population)
        local h = common.progress(archive, st.generation, new)
        h.offspring, h.random = n_gen, #kids - n_gen
        h.front = #M.sort(recs, st.population)[1]
        st.history[#st.history + 1] = h
        ctx.log(h)
        common.checkpoint(ctx)
    end
    local all = {}
    for i = 1, #recs do all[i] = i end
    local front = M.sort(recs, all)[1]
    table.sort(front, function(a, b)
        if recs[a].result.latency ~= recs[b].result.latency then
            return recs[a].result.latency < recs[b].result.latency
        end
        return a < b
    end)
    local pareto, best = {}, nil
    for k, i in ipairs(front) do
        pareto[k] = { arch = recs[i].arch, result = recs[i].result, fitness = recs[i].fitness }
        if not best or recs[i].fitness > recs[best].fitness
            or (recs[i].fitness == recs[best].fitness and i < best) then best = i end
    end
    st.done = common.result(archive, st.history, st.l_base, {
        pareto = pareto, best = recs[best].arch, best_result = recs[best].result,
        best_fitness = recs[best].fitness })
    common.checkpoint(ctx)
    return st.done
end

return M
