-- autonad.search.common: what the shipped strategies share: the scalar fitness and its
-- latency baseline, the record of evaluated candidates (no duplicate evaluations), candidate
-- collection under the constraints, and the random generator's checkpointing.
local arch = require 'autonad.arch'

local M = {}

--- fitness = accuracy - weight * latency / l_base (reference section 5): an average-speed
--- candidate pays `weight` accuracy points.
function M.fitness(result, l_base, weight)
    return result.accuracy - weight * result.latency / l_base
end

--- L_base: options.latency_base when set, else the mean latency of options.baseline subnets
--- sampled from ctx.prior, measured through ctx.evaluate after options.warmup others (one
--- call, warm-up first; the constraints do not apply, as in the reference).
function M.latency_base(ctx)
    local o = ctx.options
    if o.latency_base then return o.latency_base end
    if o.baseline < 1 then error('autonad: search: options.baseline must be at least 1', 0) end
    local archs = {}
    for i = 1, o.warmup + o.baseline do archs[i] = arch.sample(ctx.space, ctx.rng, ctx.prior) end
    local res, sum = ctx.evaluate(archs), 0
    for i = o.warmup + 1, #archs do sum = sum + res[i].latency end
    local l = sum / o.baseline
    if not (l > 0) then error('autonad: search: the baseline latency is ' .. l .. ', not positive', 0) end
    return l
end

--- Restores ctx.rng from ctx.state.rng when resuming.
function M.resume_rng(ctx)
    if ctx.state.rng then ctx.rng:set_state(ctx.state.rng) end
end

--- Saves the generator's position into ctx.state and persists the state.
function M.checkpoint(ctx)
    ctx.state.rng = ctx.rng:state()
    ctx.checkpoint()
end

-- The archive: ctx.state.evaluated is the list of records { arch, result, fitness, params,
-- generation } of every candidate the search evaluated (baseline subnets excluded); `seen`
-- maps arch.key to the record index and is rebuilt from the list on resume.
local Archive = {}
Archive.__index = Archive

function M.archive(ctx)
    ctx.state.evaluated = ctx.state.evaluated or {}
    local self = setmetatable({ ctx = ctx, records = ctx.state.evaluated, seen = {} }, Archive)
    for i, r in ipairs(self.records) do self.seen[arch.key(r.arch)] = i end
    return self
end

--- Up to n new admissible architectures from make(): at most `tries` calls; an architecture
--- already evaluated, already collected (in this call or in `pending`, a key set) or outside
--- the constraints is skipped.
function Archive:collect(n, tries, make, pending, out)
    out, pending = out or {}, pending or {}
    local want = #out + n
    while #out < want and tries > 0 do
        tries = tries - 1
        local a = make()
        if a then
            local k = arch.key(a)
            if not self.seen[k] and not pending[k] and self.ctx.admissible(a) then
                pending[k] = true
                out[#out + 1] = a
            end
        end
    end
    return out
end

--- Evaluates archs (new ones) and appends their records; returns the new record indices.
function Archive:evaluate(archs, generation, l_base, weight)
    local res = self.ctx.evaluate(archs)
    local idx = {}
    for i, a in ipairs(archs) do
        local r = res[i]
        local params = r.params
        if type(params) ~= 'number' and self.ctx.cost then params = self.ctx.cost(a).params end
        local rec = { arch = a, result = r, fitness = M.fitness(r, l_base, weight),
            params = params or 0, generation = generation }
        self.records[#self.records + 1] = rec
        self.seen[arch.key(a)] = #self.records
        idx[#idx + 1] = #self.records
    end
    return idx
end

--- Record indices sorted by fitness, best first (ties: earlier record first).
function Archive:ranked(indices)
    local out = {}
    for i, v in ipairs(indices) do out[i] = v end
    local recs = self.records
    table.sort(out, function(a, b)
        if recs[a].fitness ~= recs[b].fitness then return recs[a].fitness > recs[b].fitness end
        return a < b
    end)
    return out
end

--- The index of the best record overall (nil when none).
function Archive:best()
    local b
    for i, r in ipairs(self.records) do
        if not b or r.fitness > self.records[b].fitness then b = i end
    end
    return b
end

--- A progress entry: the best so far and the mean fitness of `indices` (the new population).
function M.progress(archive, generation, indices)
    local b = archive.records[archive:best()]
    local sum = 0
    for _, i in ipairs(indices) do sum = sum + archive.records[i].fitness end
    return { generation = generation, evaluated = #archive.records, new = #indices,
        best_fitness = b.fitness, best_accuracy = b.result.accuracy, best_latency = b.result.latency,
        mean_fitness = #indices > 0 and sum / #indices or nil }
end

--- The result table of a finished run.
function M.result(archive, history, l_base, extra)
    local b = archive.records[archive:best()]
    local out = { best = b.arch, best_result = b.result, best_fitness = b.fitness,
        history = history, latency_base = l_base, evaluated = #archive.records }
    for k, v in pairs(extra or {}) do out[k] = v end
    return out
end

--- The start every strategy shares: restore the generator, and measure L_base once
--- (checkpointed). Returns the finished result when the state holds one (a resumed run that
--- had completed), else nil.
function M.start(ctx, name)
    local st = ctx.state
    M.resume_rng(ctx)
    if st.done then return st.done end
    if not st.l_base then
        st.l_base = M.latency_base(ctx)
        ctx.log({ strategy = name, latency_base = st.l_base })
        M.checkpoint(ctx)
    end
end

return M
