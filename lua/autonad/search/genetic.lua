-- autonad.search.genetic: mutation and crossover of architectures (reference section 5), shared
-- by the evolution and NSGA-II strategies and usable by user strategies. Operators and decoder
-- conv types are drawn from the prior; depth, width, ratio and pool sizes uniformly. Both
-- return a new architecture (the parents are not changed) and draw only from the rng given.
local arch = require 'autonad.arch'

local M = {}

--- A mutant of parent. With probability o.depth_prob (0.4) every stage's depth is re-drawn
--- (one coin for all stages, as AutoFormer); a stage that grows gets new blocks with uniform
--- ratios and prior-drawn operators for their positions, one that shrinks loses its last
--- blocks. Then each gene is re-drawn with probability o.mutation_prob (0.2): each block's
--- ratio, each stage's width, each block's operator (prior), each decoder slot's conv type
--- (prior) and each PPM pool size. A re-draw may return the same value.
function M.mutate(space, rng, prior, parent, o)
    local pm, pd = o.mutation_prob or 0.2, o.depth_prob or 0.4
    local a = arch.copy(parent)
    if rng:random() < pd then
        for s, st in ipairs(space.stages) do
            local old, d = a.depth[s], rng:choice(st.depth)
            for b = old + 1, d do
                a.ratio[s][b] = rng:choice(st.ratio)
                a.op[s][b] = arch.draw_op(space, rng, s, b, prior)
            end
            for b = old, d + 1, -1 do a.ratio[s][b], a.op[s][b] = nil, nil end
            a.depth[s] = d
        end
    end
    for s, st in ipairs(space.stages) do
        for b = 1, a.depth[s] do
            if rng:random() < pm then a.ratio[s][b] = rng:choice(st.ratio) end
        end
    end
    for s, st in ipairs(space.stages) do
        if rng:random() < pm then a.width[s] = rng:choice(st.width) end
    end
    for s = 1, #space.stages do
        for b = 1, a.depth[s] do
            if rng:random() < pm then a.op[s][b] = arch.draw_op(space, rng, s, b, prior) end
        end
    end
    for i = 1, #space.decoder.slots do
        if rng:random() < pm then a.decoder.conv[i] = arch.draw_conv(space, rng, i, prior) end
    end
    for i, choices in ipairs(space.decoder.pool_sizes) do
        if rng:random() < pm then a.decoder.pool[i] = rng:choice(choices) end
    end
    return a
end

local function either(rng, x, y) if rng:random() < 0.5 then return x end return y end

--- A child of p1 and p2, gene by gene: on every stage where the parents' depths agree, the
--- width and each block's ratio and operator come from either parent (a fair coin each); on
--- the other stages the child keeps p1's stage. Each decoder conv type and pool size comes
--- from either parent. (The reference's two-stage variant lost one stage's result; here every
--- stage with agreeing depths takes part.)
function M.crossover(space, rng, p1, p2)
    local a = arch.copy(p1)
    for s = 1, #space.stages do
        if p1.depth[s] == p2.depth[s] then
            a.width[s] = either(rng, p1.width[s], p2.width[s])
            for b = 1, p1.depth[s] do
                a.ratio[s][b] = either(rng, p1.ratio[s][b], p2.ratio[s][b])
                a.op[s][b] = either(rng, p1.op[s][b], p2.op[s][b])
            end
        end
    end
    for i = 1, #space.decoder.slots do
        a.decoder.conv[i] = either(rng, p1.decoder.conv[i], p2.decoder.conv[i])
    end
    for i = 1, #space.decoder.pool_sizes do
        a.decoder.pool[i] = either(rng, p1.decoder.pool[i], p2.decoder.pool[i])
    end
    return a
end

--- Two distinct members of list (one twice when the list has one element).
function M.two(rng, list)
    local i = rng:randint(1, #list)
    if #list < 2 then return list[i], list[i] end
    local j = rng:randint(1, #list - 1)
    if j >= i then j = j + 1 end
    return list[i], list[j]
end

return M
