-- autonad.search.random: random search, the baseline the evolution must beat. Draws admissible
-- subnets from the prior (depth, width, ratio, pool sizes uniform), never the same one twice,
-- evaluates them in batches and keeps the fittest by the evolution's fitness:
--   fitness = accuracy - latency_weight * latency / L_base   (L_base measured the same way)
-- Stops after `samples` evaluations or when `random_tries` draws per wanted subnet find no new
-- admissible one. Checkpoints after L_base and after every batch.
local arch = require 'autonad.arch'
local common = require 'autonad.search.common'

local M = {}

M.defaults = {
    samples = 1000, batch = 50, latency_weight = 5, warmup = 40, baseline = 40,
    latency_base = false, random_tries = 100,
}

function M.run(ctx)
    local o, st = ctx.options, ctx.state
    local done = common.start(ctx, 'random')
    if done then return done end
    local archive = common.archive(ctx)
    st.history, st.batches = st.history or {}, st.batches or 0
    local function sample() return arch.sample(ctx.space, ctx.rng, ctx.prior) end
    while #archive.records < o.samples and not st.exhausted do
        local n = math.min(o.batch, o.samples - #archive.records)
        local batch = archive:collect(n, n * o.random_tries, sample)
        if #batch < n then st.exhausted = true end
        if #batch == 0 then break end
        st.batches = st.batches + 1
        local idx = archive:evaluate(batch, st.batches, st.l_base, o.latency_weight)
        local h = common.progress(archive, st.batches, idx)
        st.history[#st.history + 1] = h
        ctx.log(h)
        common.checkpoint(ctx)
    end
    if #archive.records == 0 then
        error('autonad: search.random: no admissible architecture found (check the constraints)', 0)
    end
    st.done = common.result(archive, st.history, st.l_base)
    common.checkpoint(ctx)
    return st.done
end

return M
