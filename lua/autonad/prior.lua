-- autonad.prior: the distributions the search draws operators and decoder conv types from
-- (reference section 4). The search strategies and arch.sample use them; the pipeline builds
-- one from the supernet-training log (or a latency table) and saves it as JSON.
--
-- A prior is a plain table, interchangeable whatever built it:
--   { op   = { [s] = { [b] = { attention = p, conv = p, mlp = p } } },  -- per encoder position
--     conv = { [i] = { ['1x1'] = p, ['3x3'] = p, ... } },                -- per decoder slot
--     source = 'uniform' | 'log' | 'table' }                            -- informative only
-- Every map covers all of its position's choices and sums to 1. Depth, width, ratio and pool
-- sizes are not part of a prior: the search draws them uniformly.
local json = require 'autonad.json'

local M = {}

local function uniform_map(choices)
    local m = {}
    for _, c in ipairs(choices) do m[c] = 1 / #choices end
    return m
end

local function max_depth(st)
    local m = 0
    for _, d in ipairs(st.depth) do if d > m then m = d end end
    return m
end

--- The uniform prior of space: every operator and conv type equally likely everywhere.
function M.uniform(space)
    local p = { op = {}, conv = {}, source = 'uniform' }
    for s, st in ipairs(space.stages) do
        p.op[s] = {}
        for b = 1, max_depth(st) do p.op[s][b] = uniform_map(st.operators) end
    end
    for i = 1, #space.decoder.slots do p.conv[i] = uniform_map(space.decoder.conv_types) end
    return p
end

-- p = mix * counts / total + (1 - mix) / #choices; uniform where total is 0
local function mixed(choices, counts, mix)
    local total = 0
    for _, c in ipairs(choices) do total = total + (counts[c] or 0) end
    if total == 0 then return uniform_map(choices) end
    local m = {}
    for _, c in ipairs(choices) do m[c] = mix * (counts[c] or 0) / total + (1 - mix) / #choices end
    return m
end

local function check_mix(mix, who)
    if type(mix) ~= 'number' or mix < 0 or mix > 1 then
        error('autonad: ' .. who .. ': opts.mix must be a number in [0, 1], got ' .. tostring(mix), 0)
    end
end

--- Reads a supernet-training log: JSON lines, one record per line (blank lines skipped).
--- Returns the list of records; a line that is not a JSON object is an error naming the file
--- and the line: "autonad: prior: train.jsonl:12: ...".
function M.read_log(path)
    local f, err = io.open(path, 'r')
    if not f then error('autonad: prior: cannot read ' .. path .. ': ' .. tostring(err), 0) end
    local out, n = {}, 0
    for line in f:lines() do
        n = n + 1
        if line:find('%S') then
            local ok, v = pcall(json.decode, line)
            if not ok or type(v) ~= 'table' or #v > 0 then
                f:close()
                local why = 'not a JSON object'
                if not ok then
                    why = tostring(v):gsub('^autonad: json: ', ''):gsub(' at line 1 %(byte (%d+)%)', ' at column %1')
                end
                error('autonad: prior: ' .. path .. ':' .. n .. ': ' .. why, 0)
            end
            out[#out + 1] = v
        end
    end
    f:close()
    return out
end

local function contains(list, v)
    for _, x in ipairs(list) do if x == v then return true end end
    return false
end

--- The latency-aware prior from supernet-training log records (reference section 4).
--- entries: a list of records { arch = <architecture>, forward_ms = number, ... } or the path
--- of a JSON-lines log (read_log). opts.top (300): how many of the fastest records count
--- (ties keep log order); opts.mix (0.9): p = mix * p_counted + (1 - mix) * uniform, per
--- encoder position (stage, block) over that stage's operators and per decoder slot over the
--- conv types; a position no counted record reaches is uniform. A record without a numeric
--- forward_ms or whose arch holds a choice outside space is an error naming the record.
function M.from_log(space, entries, opts)
    opts = opts or {}
    if type(entries) == 'string' then entries = M.read_log(entries) end
    local top, mix = opts.top or 300, opts.mix or 0.9
    check_mix(mix, 'prior.from_log')
    if type(top) ~= 'number' or top < 1 or top % 1 ~= 0 then
        error('autonad: prior.from_log: opts.top must be a positive integer, got ' .. tostring(top), 0)
    end
    local order = {}
    for i, e in ipairs(entries) do
        if type(e) ~= 'table' or type(e.forward_ms) ~= 'number' or type(e.arch) ~= 'table' then
            error('autonad: prior.from_log: record ' .. i
                .. ' needs arch (a table) and forward_ms (a number)', 0)
        end
        order[i] = i
    end
    table.sort(order, function(a, b)
        local fa, fb = entries[a].forward_ms, entries[b].forward_ms
        if fa ~= fb then return fa < fb end
        return a < b
    end)
    local op_counts, conv_counts = {}, {}
    for s, st in ipairs(space.stages) do
        op_counts[s] = {}
        for b = 1, max_depth(st) do op_counts[s][b] = {} end
    end
    for i = 1, #space.decoder.slots do conv_counts[i] = {} end
    for r = 1, math.min(top, #order) do
        local idx = order[r]
        local a = entries[idx].arch
        local function bad(what) error('autonad: prior.from_log: record ' .. idx .. ': ' .. what, 0) end
        if type(a.op) ~= 'table' or type(a.decoder) ~= 'table' or type(a.decoder.conv) ~= 'table' then
            bad('arch needs op and decoder.conv')
        end
        for s, st in ipairs(space.stages) do
            for b, o in ipairs(a.op[s] or {}) do
                if b > max_depth(st) or not contains(st.operators, o) then
                    bad('op[' .. s .. '][' .. b .. '] = ' .. tostring(o) .. ' is not in the space')
                end
                op_counts[s][b][o] = (op_counts[s][b][o] or 0) + 1
            end
        end
        for i, t in ipairs(a.decoder.conv) do
            if i > #space.decoder.slots or not contains(space.decoder.conv_types, t) then
                bad('decoder.conv[' .. i .. '] = ' .. tostring(t) .. ' is not in the space')
            end
            conv_counts[i][t] = (conv_counts[i][t] or 0) + 1
        end
    end
    local p = { op = {}, conv = {}, source = 'log' }
    for s, st in ipairs(space.stages) do
        p.op[s] = {}
        for b = 1, max_depth(st) do p.op[s][b] = mixed(st.operators, op_counts[s][b], mix) end
    end
    for i = 1, #space.decoder.slots do p.conv[i] = mixed(space.decoder.conv_types, conv_counts[i], mix) end
    return p
end

-- softmax of -cost / T over choices, mixed with uniform
local function soft(choices, costs, opts)
    local T = opts.temperature
    if not T then
        local mean = 0
        for _, c in ipairs(choices) do mean = mean + costs[c] end
        mean = mean / #choices
        T = (opts.relative_temperature or 0.25) * mean
    end
    if not (T > 0) then -- all costs zero (or a bad temperature): nothing to prefer
        return uniform_map(choices)
    end
    local lo = math.huge
    for _, c in ipairs(choices) do lo = math.min(lo, costs[c]) end
    local w, sum = {}, 0
    for _, c in ipairs(choices) do w[c] = math.exp(-(costs[c] - lo) / T); sum = sum + w[c] end
    local mix, m = opts.mix or 0.9, {}
    for _, c in ipairs(choices) do m[c] = mix * w[c] / sum + (1 - mix) / #choices end
    return m
end

--- A prior from a latency model: cost(stage, block, choice) -> predicted ms of operator
--- `choice` in block `block` of stage `stage` (an integer), and cost('decoder', slot, type) for
--- decoder slot `slot` (1..10) with conv type `type`. Lower cost, higher probability:
---   p = mix * softmax(-cost / T) + (1 - mix) * uniform
--- over the choices of each position. T: opts.temperature (ms) when given, else
--- opts.relative_temperature (0.25) times the mean cost of that position's choices, so a
--- choice 25 % of the mean slower is e times less likely (before mixing). opts.mix: 0.9.
--- A cost that is not a finite non-negative number is an error naming the position.
function M.from_table(space, cost, opts)
    opts = opts or {}
    check_mix(opts.mix or 0.9, 'prior.from_table')
    if type(cost) ~= 'function' then error('autonad: prior.from_table: cost must be a function', 0) end
    if opts.temperature ~= nil and not (type(opts.temperature) == 'number' and opts.temperature > 0) then
        error('autonad: prior.from_table: opts.temperature must be a positive number', 0)
    end
    local function costs_of(stage, b, choices)
        local c = {}
        for _, x in ipairs(choices) do
            local v = cost(stage, b, x)
            if type(v) ~= 'number' or v ~= v or v < 0 or v == math.huge then
                error('autonad: prior.from_table: cost(' .. tostring(stage) .. ', ' .. b .. ', ' .. x
                    .. ') = ' .. tostring(v) .. ' is not a finite non-negative number', 0)
            end
            c[x] = v
        end
        return c
    end
    local p = { op = {}, conv = {}, source = 'table' }
    for s, st in ipairs(space.stages) do
        p.op[s] = {}
        for b = 1, max_depth(st) do p.op[s][b] = soft(st.operators, costs_of(s, b, st.operators), opts) end
    end
    local types = space.decoder.conv_types
    for i = 1, #space.decoder.slots do p.conv[i] = soft(types, costs_of('decoder', i, types), opts) end
    return p
end

--- Checks that p is a prior for space (every position present, probabilities of the
--- position's choices non-negative and summing to 1 within 1e-6); errors name the position.
function M.check(space, p)
    local function fail(where, msg) error('autonad: prior: ' .. where .. ' ' .. msg, 0) end
    if type(p) ~= 'table' or type(p.op) ~= 'table' or type(p.conv) ~= 'table' then
        fail('', 'must be a table { op = ..., conv = ... }')
    end
    local function check_map(where, m, choices)
        if type(m) ~= 'table' then fail(where, 'is missing') end
        local sum = 0
        for _, c in ipairs(choices) do
            local v = m[c] or 0
            if type(v) ~= 'number' or v < 0 then fail(where .. '.' .. c, 'must be a non-negative number') end
            sum = sum + v
        end
        if math.abs(sum - 1) > 1e-6 then fail(where, 'sums to ' .. sum .. ', not 1') end
    end
    for s, st in ipairs(space.stages) do
        for b = 1, max_depth(st) do
            check_map('op[' .. s .. '][' .. b .. ']', (p.op[s] or {})[b], st.operators)
        end
    end
    for i = 1, #space.decoder.slots do check_map('conv[' .. i .. ']', p.conv[i], space.decoder.conv_types) end
    return p
end

--- Writes p as JSON to path (atomically).
function M.save(path, p) json.write(path, p) end

--- Reads a prior saved by save; with space given, also checks it against space.
function M.load(path, space)
    local p = json.read(path)
    if space then
        local ok, err = pcall(M.check, space, p)
        if not ok then
            error((tostring(err):gsub('^autonad: prior:', 'autonad: prior ' .. path .. ':')), 0)
        end
    end
    return p
end

return M
