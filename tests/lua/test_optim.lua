-- test_optim.lua: learning-rate schedules against their closed forms, optimisers through the
-- FFI (slice stepping, state_dict round trip bit for bit, a least-squares problem), errors.
local autonad = require 'autonad'
local optim = autonad.optim
local schedule = optim.schedule
local T = require 'testing'

local tests = {}

-- ---- schedules ----

function tests.cosine_matches_closed_form()
    local base, floor, ws = 1e-3, 1e-5, 1e-4
    local s = schedule.new { kind = 'cosine', base = base, floor = floor, warmup = 10,
                             warmup_start = ws, total = 110 }
    T.near(s.lr(0), ws, 1e-12, 'warm-up start')
    T.near(s.lr(5), ws + (base - ws) * 0.5, 1e-12, 'warm-up middle')
    T.near(s.lr(10), base, 1e-12, 'warm-up end')
    T.near(s.lr(60), floor + (base - floor) * 0.5, 1e-12, 'cosine middle')
    T.near(s.lr(35), floor + (base - floor) * 0.5 * (1 + math.cos(math.pi * 0.25)), 1e-12)
    T.eq(s.lr(110), floor, 'end of schedule')
    T.eq(s.lr(1000), floor, 'after the end')
    local prev = math.huge
    for t = 10, 200 do
        local v = s.lr(t)
        T.ok(v <= prev, 'not monotone at step ' .. t)
        T.ok(v >= floor, 'below the floor at step ' .. t)
        prev = v
    end
    for t = 0, 10 do T.ok(s.lr(t) >= floor) end
end

function tests.poly_matches_closed_form()
    local base, floor = 1e-2, 1e-4
    local s = schedule.poly { base = base, power = 0.9, total = 100, warmup = 5, floor = floor }
    T.eq(s.lr(0), floor, 'warm-up starts at the floor by default')
    T.near(s.lr(5), base * (1 - 5 / 100) ^ 0.9, 1e-12, 'warm-up ends on the poly curve')
    T.near(s.lr(2.5), floor + (base * 0.95 ^ 0.9 - floor) * 0.5, 1e-12, 'warm-up middle')
    T.near(s.lr(50), base * 0.5 ^ 0.9, 1e-12)
    T.near(s.lr(99), base * 0.01 ^ 0.9, 1e-12)
    T.eq(s.lr(99.9), floor, 'floored near the end') -- base * 0.001^0.9 = 2e-5 < floor
    T.eq(s.lr(100), floor)
    T.eq(s.lr(150), floor, 'no NaN past the end')
    local prev = math.huge
    for t = 5, 120, 0.5 do
        local v = s.lr(t)
        T.ok(v <= prev and v >= floor, 'step ' .. t)
        prev = v
    end
end

function tests.warmup_below_floor_is_clamped()
    local s = schedule.cosine { base = 1, floor = 0.1, warmup = 4, warmup_start = 0, total = 10 }
    T.eq(s.lr(0), 0.1, 'the floor holds during warm-up')
    T.near(s.lr(2), 0.5, 1e-12)
    local c = schedule.new { kind = 'constant', base = 0.3, warmup = 2 }
    T.eq(c.lr(0), 0)
    T.near(c.lr(1), 0.15, 1e-12)
    T.eq(c.lr(7), 0.3)
    local f = schedule.new(function(t) return 1 / (1 + t) end)
    T.eq(f.lr(1), 0.5)
end

function tests.schedule_errors_name_the_key()
    T.errors(function() schedule.new { kind = 'cosine', base = 1, total = 10, flor = 0 } end,
        "unknown key 'flor' for kind 'cosine'")
    T.errors(function() schedule.new { kind = 'linear', base = 1 } end, "unknown kind 'linear'")
    T.errors(function() schedule.new { kind = 'poly', base = 1 } end, "kind 'poly' needs 'total'")
    T.errors(function() schedule.new { kind = 'poly', base = 1, total = '9' } end,
        "'total' must be a number")
    T.errors(function() schedule.cosine { base = 1e-3, floor = 1e-2, total = 5 } end,
        "'base' = 0.001 is below 'floor' = 0.01")
    T.errors(function() schedule.cosine { base = 1, total = 5, warmup = 5 } end,
        "'total' = 5 must exceed 'warmup' = 5")
end

-- ---- optimisers ----

-- a deterministic gradient for step k (values in [-1, 1))
local function fill_grad(g, k, salt)
    autonad.rng(1000 * k + (salt or 0)):uniform_(g, -1, 1)
end

local function clone_all(list)
    local out = {}
    for i, t in ipairs(list) do out[i] = t:clone() end
    return out
end

local function same_bits(a, b, what)
    local x, y = a:tolist(), b:tolist()
    T.eq(#x, #y, what)
    for i = 1, #x do
        if x[i] ~= y[i] then
            error(string.format('%s: element %d differs: %.9g vs %.9g', what, i, x[i], y[i]), 2)
        end
    end
end

local function make_params()
    local rng = autonad.rng(5)
    local params = { autonad.tensor(4, 6), autonad.tensor(6), autonad.tensor(3, 2, 2) }
    for _, p in ipairs(params) do rng:uniform_(p, -1, 1) end
    local grads = {}
    for i, p in ipairs(params) do grads[i] = autonad.tensor(p:size()) end
    return params, grads
end

local CONFIGS = {
    { 'SGD', { lr = 0.1, momentum = 0.9, dampening = 0.1, weight_decay = 0.01 } },
    { 'SGD', { lr = 0.1, momentum = 0.9, nesterov = true } },
    { 'Adam', { lr = 0.01, weight_decay = 0.01 } },
    { 'AdamW', { lr = 0.01, weight_decay = 0.05, betas = { 0.8, 0.99 }, eps = 1e-6 } },
}

-- steps k = from..to: grads for step k, lr from a schedule, slices on even steps
local function run_steps(opt, grads, from, to)
    local sched = schedule.cosine { base = opt.lr0, floor = opt.lr0 / 100, warmup = 2, total = 6 }
    for k = from, to do
        for i, g in ipairs(grads) do fill_grad(g, k, i) end
        opt.lr = sched.lr(k - 1)
        if k % 2 == 0 then opt:step({ { 3, 4 }, nil, { 2, 2, 1 } }) else opt:step() end
    end
end

function tests.state_round_trip_is_bit_identical()
    for _, cfg in ipairs(CONFIGS) do
        local name, opts = cfg[1], cfg[2]
        local pa, ga = make_params()
        local a = optim[name](pa, ga, opts)
        a.lr0 = opts.lr
        run_steps(a, ga, 1, 5)

        local pb, gb = make_params()
        local b = optim[name](pb, gb, opts)
        b.lr0 = opts.lr
        run_steps(b, gb, 1, 3)
        local sd = b:state_dict()
        T.eq(sd.kind, name)
        T.eq(sd.steps[1], 3)
        T.eq(sd.steps[2], 2, 'param 2 skipped on slice steps')

        -- resume: fresh parameters holding b's values, a fresh optimiser, the saved state
        local pc, gc = make_params()
        for i = 1, #pc do pc[i]:copy(pb[i]) end
        local c = optim[name](pc, gc, { lr = 123 })
        c:load_state_dict(sd)
        T.eq(c.lr, b.lr, name .. ': lr restored')
        c.lr0 = opts.lr
        run_steps(c, gc, 4, 5)
        for i = 1, #pa do same_bits(pc[i], pa[i], name .. ' param ' .. i) end
        local sa, sc = a:state_dict(), c:state_dict()
        for i = 1, #pa do
            T.eq(sc.steps[i], sa.steps[i])
            for k, t in pairs(sa.state[i]) do same_bits(sc.state[i][k], t, name .. ' ' .. k) end
        end
    end
end

function tests.slice_step_touches_only_the_slice()
    local P = autonad.tensor(4, 6)
    autonad.rng(3):uniform_(P, -1, 1)
    local G = autonad.tensor(4, 6)
    autonad.rng(4):uniform_(G, -1, 1)
    local before = P:clone()
    local other = autonad.tensor(5):fill(1)
    local opt = optim.AdamW({ P, other }, { G, autonad.tensor(5):fill(1) },
        { lr = 0.01, weight_decay = 0.05 })
    opt:step({ { 2, 3 } }) -- param 2 nil: skipped

    -- the same step on a contiguous copy of the slice
    local p = before:narrow(1, 1, 2):narrow(2, 1, 3):clone()
    local g = G:narrow(1, 1, 2):narrow(2, 1, 3):clone()
    optim.AdamW({ p }, { g }, { lr = 0.01, weight_decay = 0.05 }):step()
    for r = 1, 4 do
        for c = 1, 6 do
            if r <= 2 and c <= 3 then
                T.eq(P:get(r, c), p:get(r, c), 'slice element')
                T.ok(P:get(r, c) ~= before:get(r, c), 'slice element moved')
            else
                T.eq(P:get(r, c), before:get(r, c), 'outside the slice')
                T.eq(opt.state[1].exp_avg:get(r, c), 0, 'state outside the slice')
            end
        end
    end
    T.eq(opt.steps[1], 1)
    T.eq(opt.steps[2], 0, 'skipped parameter')
    same_bits(other, autonad.tensor(5):fill(1), 'skipped parameter unchanged')

    -- a later full step continues the slice's moments and advances the shared count
    opt:step({ true, { 3 } })
    T.eq(opt.steps[1], 2)
    T.eq(opt.steps[2], 1)
    T.eq(other:get(4), 1, 'outside the 1-d slice')
    T.ok(other:get(3) < 1)
    -- a zero-length slice steps nothing and does not count
    opt:step({ { 0, 6 } })
    T.eq(opt.steps[1], 2)
end

-- 0.5 |A x - b|^2 and its gradient A^T (A x - b), written into g
local function lsq(A, b, x, g)
    local m, n = #A, #A[1]
    local r, loss = {}, 0
    for i = 1, m do
        local s = -b[i]
        for j = 1, n do s = s + A[i][j] * x:get(j) end
        r[i] = s
        loss = loss + 0.5 * s * s
    end
    if g then
        for j = 1, n do
            local s = 0
            for i = 1, m do s = s + A[i][j] * r[i] end
            g:set(s, j)
        end
    end
    return loss
end

function tests.least_squares_loss_falls()
    local rng = autonad.rng(11)
    local A, b = {}, {}
    for i = 1, 8 do
        A[i] = {}
        for j = 1, 4 do A[i][j] = rng:random() * 2 - 1 end
        b[i] = rng:random() * 2 - 1
    end
    local runs = {
        { 'SGD', { lr = 0.05 }, true },
        { 'SGD', { lr = 0.02, momentum = 0.9, nesterov = true } },
        { 'Adam', { lr = 0.05 } },
        { 'AdamW', { lr = 0.05, weight_decay = 0.01 } },
    }
    for _, run in ipairs(runs) do
        local x, g = autonad.tensor(4):fill(0.5), autonad.tensor(4)
        local opt = optim[run[1]]({ x }, { g }, run[2])
        local first = lsq(A, b, x)
        local prev = first
        for _ = 1, 150 do
            lsq(A, b, x, g)
            opt:step()
            local l = lsq(A, b, x)
            if run[3] then T.ok(l <= prev, run[1] .. ': plain SGD with a small lr never goes up') end
            prev = l
        end
        -- well below the start, and at the minimum: the gradient vanishes
        T.ok(prev < 0.2 * first, string.format('%s: loss %.4g from %.4g', run[1], prev, first))
        lsq(A, b, x, g)
        local gn = 0
        for j = 1, 4 do gn = gn + g:get(j) ^ 2 end
        T.ok(math.sqrt(gn) < 0.05, run[1] .. ': gradient norm ' .. math.sqrt(gn))
    end
end

function tests.momentum_switched_on_later_gets_a_buffer()
    local p, g = autonad.tensor(3):fill(1), autonad.tensor(3):fill(1)
    local opt = optim.SGD({ p }, { g }, { lr = 0.1 })
    opt:step({ { 2 } })
    T.near(p:get(1), 0.9, 1e-7)
    opt.momentum = 0.5
    opt:step({ { 2 } }) -- second step: buf = 0.5 * 0 + g (first_step was the parameter's first)
    T.near(p:get(1), 0.8, 1e-6)
    opt:step({ { 2 } }) -- buf = 0.5 * 1 + 1
    T.near(p:get(1), 0.65, 1e-6)
    T.eq(p:get(3), 1)
end

function tests.errors_are_clear()
    local p, g = autonad.tensor(2, 3), autonad.tensor(2, 3)
    T.errors(function() optim.AdamW({ p }, { g }, { lr = 1e-3, weight_dacay = 0.1 }) end,
        "optim.AdamW: unknown option 'weight_dacay'")
    T.errors(function() optim.SGD({ p }, { g }, {}) end, "optim.SGD: option 'lr' is required")
    T.errors(function() optim.Adam({ p }, { autonad.tensor(3, 2) }) end,
        'optim.Adam: grads[1] is 3x2 but params[1] is 2x3')
    T.errors(function() optim.Adam({ p }, { g }, { betas = 0.9 }) end,
        "option 'betas' must be a list of two numbers")
    local opt = optim.Adam({ p }, { g }, { betas = { 0.9, 1.0 } })
    T.errors(function() opt:step() end, 'optim.Adam.step: params[1]: adam_step: beta2 = 1')
    opt = optim.SGD({ p }, { g }, { lr = 0.1, momentum = 0.9 })
    T.errors(function() opt:step({ { 2 } }) end,
        'optim.SGD.step: slices[1] has 1 lengths but params[1] has 2 dims')
    T.errors(function() opt:step({ { 2, 4 } }) end, 'slices[1][2] = 4, expected an integer in 0..3')
    T.errors(function() opt:load_state_dict(optim.Adam({ p }, { g }):state_dict()) end,
        'the state is for Adam, this optimiser is SGD')
    T.errors(function() return optim.Lion end, 'no optimiser optim.Lion')
    T.eq(opt.steps[1], 0, 'failed calls changed nothing')
end

function tests.step_through_a_view_function()
    -- a function slice (here a centre crop of a 5-wide kernel axis) steps only that view
    local p = autonad.tensor(2, 5); p:fill(1)
    local g = autonad.tensor(2, 5); g:fill(1)
    local crop = function(t) return t:narrow(2, 2, 3) end
    local opt = autonad.optim.SGD({ p }, { g }, { lr = 0.5 })
    opt:step({ crop })
    T.all_near(p:tolist(), { 1, 0.5, 0.5, 0.5, 1, 1, 0.5, 0.5, 0.5, 1 })
end

return tests
