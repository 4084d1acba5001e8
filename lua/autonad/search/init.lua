-- autonad.search: architecture search strategies and the interface they share. The pipeline
-- builds a context and calls search.run(name_or_path, ctx); users write their own strategy as
-- a Lua file anywhere and name it by path (docs/strategies.md has a worked example).
--
-- A strategy is a table { run = function(ctx) ... end, defaults = { option = value, ... } }
-- (defaults optional: when given, an option not listed in it is an error naming the option).
--
-- ctx, the context a strategy runs in:
--   ctx.space        the search space (searchspaces/*.lua, checked by autonad.space)
--   ctx.rng          a seeded autonad.rng: the ONLY source of randomness, so that a run is
--                    reproducible by seed
--   ctx.prior        the operator / conv-type prior (autonad.prior; default uniform): pass it
--                    to arch.sample / arch.draw_op / arch.draw_conv
--   ctx.options      the strategy's settings from the recipe, defaults filled in
--   ctx.evaluate(archs) -> results, one per arch, same order:
--                    { accuracy = number (e.g. val mIoU %), latency = ms, params = n, flops = n }
--                    (expensive: the pipeline runs the subnet on the validation split)
--   ctx.constraints  { params = {min, max}, ... }: each key bounds the field of that name of
--                    ctx.cost(arch); either bound may be nil. Default: the paper's budget,
--                    params in [1e6, 1e7]; {} for none.
--   ctx.cost(arch) -> { params = n, flops = n }: cheap, no evaluation
--   ctx.admissible(arch) -> true when arch meets ctx.constraints (filled in by search.run)
--   ctx.log(t)       progress (a table: generation, best_fitness, ...); default: nothing
--   ctx.state        a table the strategy keeps ALL its resumable state in (plain data that
--                    survives JSON: numbers, strings, booleans, tables; rng:state() included)
--   ctx.checkpoint() persists ctx.state. On resume the pipeline hands back the persisted
--                    ctx.state and run() must continue from it to the same final result.
-- run(ctx) returns { best = arch, best_result = result, history = list, pareto = list or nil }
-- (pareto: a list of { arch = ..., result = ... }; strategies may add fields).
local M = {}

local function fail(msg) error('autonad: search: ' .. msg, 0) end

local here = debug.getinfo(1, 'S').source:match('^@(.*)/[^/]*$') or '.'

--- A strategy by name (a module autonad.search.<name>: evolution, random, nsga2) or by the
--- path of a Lua file returning one (anything containing '/' or ending in .lua), or a strategy
--- table itself. Errors name what was asked for.
function M.load(which)
    local s
    if type(which) == 'table' then
        s = which
    elseif type(which) == 'string' and (which:find('/', 1, true) or which:match('%.lua$')) then
        local chunk, err = loadfile(which)
        if not chunk then fail('cannot load strategy ' .. which .. ': ' .. tostring(err)) end
        local ok, v = pcall(chunk)
        if not ok then fail('strategy ' .. which .. ' failed to load: ' .. tostring(v)) end
        s = v
    elseif type(which) == 'string' then
        local f = which:match('^[%w_]+$') and io.open(here .. '/' .. which .. '.lua', 'r')
        if f then f:close() end
        if not f then
            local known = {}
            local p = io.popen('ls "' .. here .. '"/*.lua 2>/dev/null')
            if p then
                for f in p:lines() do
                    local n = f:match('([%w_]+)%.lua$')
                    local helper = n == 'init' or n == 'genetic' or n == 'common'
                    if n and not helper then known[#known + 1] = n end
                end
                p:close()
            end
            fail('no strategy "' .. which .. '" (known: ' .. table.concat(known, ', ')
                .. '; or give the path of a Lua file)')
        end
        s = require('autonad.search.' .. which)
    else
        fail('a strategy is a name, a file path or a table, got ' .. type(which))
    end
    if type(s) ~= 'table' or type(s.run) ~= 'function' then
        fail('strategy ' .. tostring(which) .. ' must return a table with a run(ctx) function')
    end
    return s
end

local function check_result(r, i)
    if type(r) ~= 'table' or type(r.accuracy) ~= 'number' or type(r.latency) ~= 'number' then
        fail('ctx.evaluate: result ' .. i .. ' must be a table with numbers accuracy and latency')
    end
end

--- Checks ctx and fills in its defaults IN PLACE (the caller's ctx.state stays the same
--- table): prior, options (strategy defaults merged; unknown option is an error), constraints,
--- log, state, checkpoint; wraps evaluate so that a wrong-length or malformed answer is an
--- error; adds ctx.admissible. Returns ctx.
function M.context(ctx, strategy)
    if type(ctx) ~= 'table' then fail('ctx must be a table') end
    if type(ctx.space) ~= 'table' then fail('ctx.space is missing') end
    if ctx.rng == nil then fail('ctx.rng is missing (a seeded autonad.rng)') end
    if type(ctx.evaluate) ~= 'function' then fail('ctx.evaluate must be a function') end
    ctx.prior = ctx.prior or require('autonad.prior').uniform(ctx.space)
    local given, opts = ctx.options or {}, {}
    if strategy and strategy.defaults then
        for k, v in pairs(given) do
            if strategy.defaults[k] == nil then
                local known = {}
                for n in pairs(strategy.defaults) do known[#known + 1] = n end
                table.sort(known)
                fail('unknown option ' .. tostring(k) .. ' (known: ' .. table.concat(known, ', ') .. ')')
            end
            if type(v) ~= type(strategy.defaults[k]) and strategy.defaults[k] ~= false then
                fail('option ' .. k .. ' must be a ' .. type(strategy.defaults[k]) .. ', got ' .. type(v))
            end
            opts[k] = v
        end
        for k, v in pairs(strategy.defaults) do if opts[k] == nil then opts[k] = v end end
    else
        for k, v in pairs(given) do opts[k] = v end
    end
    ctx.options = opts
    if ctx.constraints == nil then ctx.constraints = { params = { 1e6, 1e7 } } end
    if next(ctx.constraints) ~= nil and type(ctx.cost) ~= 'function' then
        fail('ctx.constraints needs ctx.cost(arch)')
    end
    for k, range in pairs(ctx.constraints) do
        if type(range) ~= 'table' then fail('ctx.constraints.' .. tostring(k) .. ' must be {min, max}') end
    end
    ctx.admissible = function(a)
        if next(ctx.constraints) == nil then return true end
        local c = ctx.cost(a)
        for k, range in pairs(ctx.constraints) do
            local v = c[k]
            if type(v) ~= 'number' then fail('ctx.cost gives no ' .. tostring(k) .. ' to check its constraint') end
            if (range[1] and v < range[1]) or (range[2] and v > range[2]) then return false end
        end
        return true
    end
    if not ctx.checked_evaluate then
        local raw = ctx.evaluate
        ctx.evaluate = function(archs)
            if #archs == 0 then return {} end
            local res = raw(archs)
            if type(res) ~= 'table' or #res ~= #archs then
                fail('ctx.evaluate must return one result per architecture (' .. #archs .. ')')
            end
            for i, r in ipairs(res) do check_result(r, i) end
            return res
        end
        ctx.checked_evaluate = true
    end
    ctx.log = ctx.log or function() end
    ctx.state = ctx.state or {}
    ctx.checkpoint = ctx.checkpoint or function() end
    return ctx
end

--- Loads the strategy, prepares ctx (context above) and runs it.
function M.run(which, ctx)
    local s = M.load(which)
    return s.run(M.context(ctx, s))
end

return M
