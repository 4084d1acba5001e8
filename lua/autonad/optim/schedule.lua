-- autonad.optim.schedule: learning-rate schedules in steps. A schedule is a table whose field
-- lr is a function of the step t (0 on the first step): opt.lr = sched.lr(t). Built from a
-- recipe table, e.g. schedule.new{kind = 'cosine', base = 1e-3, floor = 1e-6, warmup = 500,
-- total = 20000}, or schedule.cosine{...}; a recipe may also give its own function lr(t).
--
--   warm-up (all kinds): t in [0, warmup): linear from warmup_start (at t = 0) to the
--     schedule's value at t = warmup.
--   cosine:   t >= warmup: floor + (base - floor) (1 + cos(pi (t - warmup) / (total - warmup))) / 2,
--             so base at t = warmup, floor at t = total, floor after.
--   poly:     t >= warmup: base (1 - t / total)^power (t counts from the start, as in
--             mmsegmentation's poly), floor at and after total.
--   constant: base after warm-up.
-- Every kind is clamped below at floor, warm-up included (the reference code let learning
-- rates fall below its floor). Defaults: floor 0, warmup 0, warmup_start = floor, power 0.9.
local M = {}

-- key -> required? per kind; unknown keys are an error naming the key
local KINDS = {
    cosine = { base = true, total = true, floor = false, warmup = false, warmup_start = false },
    poly = { base = true, total = true, floor = false, warmup = false, warmup_start = false,
             power = false },
    constant = { base = true, floor = false, warmup = false, warmup_start = false },
}

local function sorted_keys(t)
    local out = {}
    for k in pairs(t) do out[#out + 1] = tostring(k) end
    table.sort(out)
    return table.concat(out, ', ')
end

local function fail(msg, ...) error('schedule: ' .. string.format(msg, ...), 4) end

-- Checks recipe r against kind's keys and fills the defaults; returns the full config.
local function configure(kind, r)
    local keys = KINDS[kind]
    local c = { kind = kind }
    for k, v in pairs(r) do
        if k ~= 'kind' then
            if keys[k] == nil then
                fail("unknown key '%s' for kind '%s' (known: kind, %s)", tostring(k), kind,
                    sorted_keys(keys))
            end
            if type(v) ~= 'number' or v ~= v then
                fail("'%s' must be a number, got %s", k, tostring(v))
            end
            c[k] = v
        end
    end
    for k, required in pairs(keys) do
        if required and c[k] == nil then fail("kind '%s' needs '%s'", kind, k) end
    end
    c.floor = c.floor or 0
    c.warmup = c.warmup or 0
    c.warmup_start = c.warmup_start or c.floor
    if kind == 'poly' then c.power = c.power or 0.9 end
    if c.floor < 0 then fail("'floor' = %g, expected >= 0", c.floor) end
    if c.base < c.floor then fail("'base' = %g is below 'floor' = %g", c.base, c.floor) end
    if c.warmup < 0 then fail("'warmup' = %g, expected >= 0", c.warmup) end
    if c.warmup_start < 0 then fail("'warmup_start' = %g, expected >= 0", c.warmup_start) end
    if c.total and not (c.total > c.warmup) then
        fail("'total' = %g must exceed 'warmup' = %g", c.total, c.warmup)
    end
    if c.power and not (c.power > 0) then fail("'power' = %g, expected > 0", c.power) end
    return c
end

local function build(c, after)
    local floor, warmup, ws = c.floor, c.warmup, c.warmup_start
    local at_warmup = after(warmup)
    local function lr(t)
        if type(t) ~= 'number' or t ~= t then
            error('schedule.lr: step must be a number, got ' .. tostring(t), 2)
        end
        local v
        if t < warmup then v = ws + (at_warmup - ws) * (t / warmup)
        else v = after(t) end
        return v > floor and v or floor
    end
    return { kind = c.kind, config = c, lr = lr }
end

--- Cosine decay from base to floor over [warmup, total], after a linear warm-up.
function M.cosine(r)
    local c = configure('cosine', r or {})
    local base, floor, warmup, total = c.base, c.floor, c.warmup, c.total
    return build(c, function(t)
        if t >= total then return floor end
        local progress = (t - warmup) / (total - warmup)
        return floor + (base - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    end)
end

--- Polynomial decay base (1 - t/total)^power, after a linear warm-up, floored.
function M.poly(r)
    local c = configure('poly', r or {})
    local base, floor, total, power = c.base, c.floor, c.total, c.power
    return build(c, function(t)
        if t >= total then return floor end
        return base * (1 - t / total) ^ power
    end)
end

--- base throughout (after an optional warm-up).
function M.constant(r)
    local c = configure('constant', r or {})
    return build(c, function() return c.base end)
end

--- A schedule from a recipe: a table with kind = 'cosine' | 'poly' | 'constant' and that
--- kind's keys, a table that already has a function lr (used as it is), or a function of t.
function M.new(r)
    if type(r) == 'function' then return { kind = 'custom', lr = r } end
    if type(r) ~= 'table' then
        error('schedule: expected a table or a function, got ' .. type(r), 2)
    end
    if type(r.lr) == 'function' then return r end
    if not KINDS[r.kind] then
        error(string.format("schedule: unknown kind '%s' (known: %s)", tostring(r.kind),
            sorted_keys(KINDS)), 2)
    end
    return M[r.kind](r)
end

return M
