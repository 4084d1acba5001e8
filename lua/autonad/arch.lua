-- autonad.arch: architectures as data. An architecture (a subnet of a search space) is a plain
-- table that round-trips through JSON:
--   { depth = {2,3,1,2}, width = {32,64,160,224},
--     ratio = { {8,7.5}, {8,8,8.5}, {4}, {3.5,4} },          -- per block
--     op    = { {'attention','conv'}, ... },                  -- per block
--     decoder = { conv = {'3x3', ...10 slots}, pool = {1,2,3,6} } }
-- This module samples (uniformly or from a per-position prior), validates with errors that
-- name the gene, and counts parameters and multiply-accumulates exactly.
local json = require 'autonad.json'

local M = {}

local function pick(rng, list) return list[rng:randint(1, #list)] end

-- draws from {choices}, weights {p} (same length, summing to ~1)
local function draw(rng, choices, p)
    local u, acc = rng:random(), 0
    for i = 1, #choices do
        acc = acc + p[i]
        if u < acc then return choices[i] end
    end
    return choices[#choices]
end

--- The operator for block b of stage s: from prior.op[s][b] (a map op -> probability) when
--- given, else uniform over the stage's operators.
function M.draw_op(space, rng, s, b, prior)
    local ops = space.stages[s].operators
    local p = prior and prior.op and prior.op[s] and prior.op[s][b]
    if not p then return pick(rng, ops) end
    local w = {}
    for i, o in ipairs(ops) do w[i] = p[o] or 0 end
    return draw(rng, ops, w)
end

--- The conv type for decoder slot i, from prior.conv[i] (map type -> probability) or uniform.
function M.draw_conv(space, rng, i, prior)
    local types = space.decoder.conv_types
    local p = prior and prior.conv and prior.conv[i]
    if not p then return pick(rng, types) end
    local w = {}
    for k, t in ipairs(types) do w[k] = p[t] or 0 end
    return draw(rng, types, w)
end

--- A random architecture: depth, width, ratio and pool sizes uniform; operators and conv
--- types uniform or from prior (see the latency-aware prior, reference section 4).
function M.sample(space, rng, prior)
    local a = { depth = {}, width = {}, ratio = {}, op = {}, decoder = { conv = {}, pool = {} } }
    for s, st in ipairs(space.stages) do
        a.depth[s] = pick(rng, st.depth)
        a.width[s] = pick(rng, st.width)
        a.ratio[s], a.op[s] = {}, {}
        for b = 1, a.depth[s] do
            a.ratio[s][b] = pick(rng, st.ratio)
            a.op[s][b] = M.draw_op(space, rng, s, b, prior)
        end
    end
    for i = 1, #space.decoder.slots do a.decoder.conv[i] = M.draw_conv(space, rng, i, prior) end
    for i, choices in ipairs(space.decoder.pool_sizes) do a.decoder.pool[i] = pick(rng, choices) end
    return a
end

local function max_of(list) local m = list[1]; for _, v in ipairs(list) do if v > m then m = v end end; return m end
local function min_of(list) local m = list[1]; for _, v in ipairs(list) do if v < m then m = v end end; return m end

local function extreme(space, f, op, conv, pool_f)
    local a = { depth = {}, width = {}, ratio = {}, op = {}, decoder = { conv = {}, pool = {} } }
    for s, st in ipairs(space.stages) do
        a.depth[s], a.width[s] = f(st.depth), f(st.width)
        a.ratio[s], a.op[s] = {}, {}
        for b = 1, a.depth[s] do a.ratio[s][b], a.op[s][b] = f(st.ratio), op(st.operators) end
    end
    for i = 1, #space.decoder.slots do a.decoder.conv[i] = conv(space.decoder.conv_types) end
    for i, c in ipairs(space.decoder.pool_sizes) do a.decoder.pool[i] = pool_f(c) end
    return a
end

local function first_of(wanted) return function(list)
    for _, w in ipairs(wanted) do for _, x in ipairs(list) do if x == w then return x end end end
    return list[1]
end end

--- The largest subnet (deepest, widest, largest ratios, 5x5 decoder convs, attention).
function M.largest(space)
    return extreme(space, max_of, first_of({ 'attention', 'conv', 'mlp' }),
        first_of({ '5x5', '3x3', 'dil3x3', 'dw3x3', '1x1' }), max_of)
end

--- The smallest subnet (shallowest, narrowest, smallest ratios, 1x1 decoder convs).
function M.smallest(space)
    return extreme(space, min_of, first_of({ 'mlp', 'conv', 'attention' }),
        first_of({ '1x1', 'dw3x3', '3x3', 'dil3x3', '5x5' }), min_of)
end

local function mid(list) return list[math.ceil(#list / 2)] end

--- A fixed middle subnet: the middle choice of every list (for reports beside the largest
--- and the smallest).
function M.middle(space)
    return extreme(space, mid, mid, mid, mid)
end

local function contains(list, v) for _, x in ipairs(list) do if x == v then return true end end return false end

local function bad(gene, msg) error('autonad: arch.' .. gene .. ': ' .. msg, 0) end

local function list_str(l) local t = {}; for i, v in ipairs(l) do t[i] = tostring(v) end; return table.concat(t, ', ') end

--- Checks that a belongs to space; the error names the gene: "arch.op[2][3]: ...".
function M.validate(space, a)
    if type(a) ~= 'table' then bad('', 'an architecture must be a table') end
    for _, k in ipairs({ 'depth', 'width', 'ratio', 'op' }) do
        if type(a[k]) ~= 'table' or #a[k] ~= #space.stages then
            bad(k, 'must list ' .. #space.stages .. ' stages')
        end
    end
    for k in pairs(a) do
        if not ({ depth = 1, width = 1, ratio = 1, op = 1, decoder = 1 })[k] then bad(tostring(k), 'is not a gene') end
    end
    for s, st in ipairs(space.stages) do
        if not contains(st.depth, a.depth[s]) then
            bad('depth[' .. s .. ']', tostring(a.depth[s]) .. ' is not one of ' .. list_str(st.depth))
        end
        if not contains(st.width, a.width[s]) then
            bad('width[' .. s .. ']', tostring(a.width[s]) .. ' is not one of ' .. list_str(st.width))
        end
        for _, k in ipairs({ 'ratio', 'op' }) do
            if type(a[k][s]) ~= 'table' or #a[k][s] ~= a.depth[s] then
                bad(k .. '[' .. s .. ']', 'must have one entry per block (depth ' .. tostring(a.depth[s]) .. ')')
            end
        end
        for b = 1, a.depth[s] do
            if not contains(st.ratio, a.ratio[s][b]) then
                bad('ratio[' .. s .. '][' .. b .. ']', tostring(a.ratio[s][b]) .. ' is not one of ' .. list_str(st.ratio))
            end
            if not contains(st.operators, a.op[s][b]) then
                bad('op[' .. s .. '][' .. b .. ']', "'" .. tostring(a.op[s][b]) .. "' is not one of " .. list_str(st.operators))
            end
        end
    end
    local d = a.decoder
    if type(d) ~= 'table' or type(d.conv) ~= 'table' or type(d.pool) ~= 'table' then
        bad('decoder', 'must be { conv = {...}, pool = {...} }')
    end
    if #d.conv ~= #space.decoder.slots then bad('decoder.conv', 'must list ' .. #space.decoder.slots .. ' slots') end
    for i, t in ipairs(d.conv) do
        if not contains(space.decoder.conv_types, t) then
            bad('decoder.conv[' .. i .. '] (' .. space.decoder.slots[i] .. ')',
                "'" .. tostring(t) .. "' is not one of " .. list_str(space.decoder.conv_types))
        end
    end
    if #d.pool ~= #space.decoder.pool_sizes then bad('decoder.pool', 'must list 4 pool sizes') end
    for i, p in ipairs(d.pool) do
        if not contains(space.decoder.pool_sizes[i], p) then
            bad('decoder.pool[' .. i .. ']', tostring(p) .. ' is not one of ' .. list_str(space.decoder.pool_sizes[i]))
        end
    end
    return a
end

local function distinct(list)
    local seen, out = {}, {}
    for _, v in ipairs(list) do if not seen[v] then seen[v] = true; out[#out + 1] = v end end
    return out
end

--- The one-point space of a: every choice list holds a's own values (per stage the distinct
--- ratios and operators of its blocks), so a supernet built on it is the standalone subnet.
function M.space_of(space, a)
    local s = M.copy(space)
    for i, st in ipairs(s.stages) do
        st.depth, st.width = { a.depth[i] }, { a.width[i] }
        st.ratio, st.operators = distinct(a.ratio[i]), distinct(a.op[i])
    end
    s.operators = {}
    for i = 1, #s.stages do for _, o in ipairs(s.stages[i].operators) do s.operators[#s.operators + 1] = o end end
    s.operators = distinct(s.operators)
    s.decoder.conv_types = distinct(a.decoder.conv)
    for i = 1, #s.decoder.pool_sizes do s.decoder.pool_sizes[i] = { a.decoder.pool[i] } end
    return s
end

--- A canonical string of a (equal architectures give equal keys): for duplicate checks.
function M.key(a) return json.encode(a) end

function M.to_json(a) return json.encode(a) end
function M.from_json(s) return json.decode(s) end

--- A deep copy.
function M.copy(a) return json.decode(json.encode(a)) end

--- Number of blocks of a.
function M.blocks(a) local n = 0; for _, d in ipairs(a.depth) do n = n + d end; return n end

return M
