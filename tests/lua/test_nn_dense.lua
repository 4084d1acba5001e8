-- test_nn_dense.lua: nn.Linear, nn.LayerNorm, nn.GroupNorm, nn.Softmax through the FFI against
-- plain Lua loops, and two-head attention built from autonad.C.nad_matmul + softmax.
local autonad = require 'autonad'
local nn = autonad.nn
local T = require 'testing'
local C = autonad.C

local tests = {}

local function rand(rng, ...)
    return rng:uniform_(autonad.tensor(...), -1, 1)
end

function tests.linear_init_is_pytorch_default_and_seeded()
    local a = nn.Linear(16, 4, { rng = autonad.rng(7) })
    local b = nn.Linear(16, 4, { rng = autonad.rng(7) })
    T.all_near(a.weight, b.weight, 0)
    T.all_near(a.bias, b.bias, 0)
    local max = 0
    for _, v in ipairs(a.weight:tolist()) do max = math.max(max, math.abs(v)) end
    T.ok(max <= 0.25 and max > 0.1, 'weights in U(-1/sqrt(16), 1/sqrt(16)): max ' .. max)
    local nb = nn.Linear(3, 2, { bias = false })
    T.eq(nb.bias, nil)
    local params = nb:parameters()
    T.eq(#params, 1)
end

function tests.linear_forward_backward_match_loops()
    local rng = autonad.rng(1)
    local lin = nn.Linear(5, 3, { rng = rng })
    local x, dy = rand(rng, 2, 4, 5), rand(rng, 2, 4, 3)
    local y = lin:forward(x)
    T.eq(table.concat(y:size(), 'x'), '2x4x3')
    local X, W, B, Y, G = x:view(8, 5), lin.weight, lin.bias, y:view(8, 3), dy:view(8, 3)
    for r = 1, 8 do
        for o = 1, 3 do
            local acc = B:get(o)
            for i = 1, 5 do acc = acc + X:get(r, i) * W:get(o, i) end
            T.near(Y:get(r, o), acc, 1e-5)
        end
    end
    local dx = lin:backward(x, dy)
    lin:backward(x, dy) -- parameter gradients accumulate: twice the single-call value
    local DX = dx:view(8, 5)
    for r = 1, 8 do
        for i = 1, 5 do
            local acc = 0
            for o = 1, 3 do acc = acc + G:get(r, o) * W:get(o, i) end
            T.near(DX:get(r, i), acc, 1e-5)
        end
    end
    for o = 1, 3 do
        local db = 0
        for r = 1, 8 do db = db + G:get(r, o) end
        T.near(lin.grad.bias:get(o), 2 * db, 1e-5)
        for i = 1, 5 do
            local dw = 0
            for r = 1, 8 do dw = dw + G:get(r, o) * X:get(r, i) end
            T.near(lin.grad.weight:get(o, i), 2 * dw, 1e-5)
        end
    end
end

function tests.linear_on_weight_slices_equals_contiguous_copy()
    local rng = autonad.rng(2)
    local big = nn.Linear(8, 6, { rng = rng })
    local X = rand(rng, 3, 8)
    local x = X:narrow(2, 1, 5)            -- x[:, :5], rows 8 apart
    local w = big.weight:narrow(1, 1, 4):narrow(2, 1, 5)
    local b = big.bias:narrow(1, 1, 4)
    local y, yc = autonad.tensor(), autonad.tensor()
    T.eq(C.nad_linear_forward(x, w, b, y), 0)
    T.eq(C.nad_linear_forward(x:clone(), w:clone(), b:clone(), yc), 0)
    T.all_near(y, yc, 1e-6)
end

function tests.linear_shape_error_is_raised()
    local lin = nn.Linear(4, 2)
    T.errors(function() lin:forward(autonad.tensor(3, 5)) end,
        'linear_forward: x has 5 features, w expects 4')
end

function tests.layernorm_normalises_rows_and_backward_matches_differences()
    local rng = autonad.rng(3)
    local ln = nn.LayerNorm(6, { eps = 1e-6 })
    rng:uniform_(ln.weight, 0.5, 1.5)
    rng:uniform_(ln.bias, -0.5, 0.5)
    local x, r = rand(rng, 4, 6), rand(rng, 4, 6)
    local y = ln:forward(x)
    for i = 1, 4 do
        local m, v = 0, 0
        for j = 1, 6 do m = m + x:get(i, j) end
        m = m / 6
        for j = 1, 6 do v = v + (x:get(i, j) - m) ^ 2 end
        local s = 1 / math.sqrt(v / 6 + 1e-6)
        for j = 1, 6 do
            T.near(y:get(i, j), (x:get(i, j) - m) * s * ln.weight:get(j) + ln.bias:get(j), 1e-5)
        end
    end
    local dx = ln:backward(x, r):clone()
    local function loss()
        local out = ln:forward(x)
        local acc = 0
        for i = 1, 4 do for j = 1, 6 do acc = acc + out:get(i, j) * r:get(i, j) end end
        return acc
    end
    for _, ij in ipairs({ { 1, 1 }, { 2, 5 }, { 4, 6 } }) do
        local i, j = ij[1], ij[2]
        local keep, h = x:get(i, j), 1e-2
        x:set(keep + h, i, j); local lp = loss()
        x:set(keep - h, i, j); local lm = loss()
        x:set(keep, i, j)
        T.near(dx:get(i, j), (lp - lm) / (2 * h), 1e-2)
    end
end

function tests.groupnorm_normalises_groups_channels_last()
    local rng = autonad.rng(4)
    local gn = nn.GroupNorm(4, 8)
    local x = rand(rng, 2, 3, 3, 8)
    local y = gn:forward(x)
    T.eq(table.concat(gn.mean:size(), 'x'), '2x4')
    for n = 1, 2 do
        for g = 0, 3 do
            local m, v, k = 0, 0, 0
            for h = 1, 3 do for w = 1, 3 do for c = 2 * g + 1, 2 * g + 2 do
                m = m + y:get(n, h, w, c); v = v + y:get(n, h, w, c) ^ 2; k = k + 1
            end end end
            T.near(m / k, 0, 1e-5)
            T.near(v / k, 1, 1e-3)
        end
    end
    local dx = gn:backward(x, rand(rng, 2, 3, 3, 8))
    T.eq(dx:numel(), x:numel())
    T.ok(math.abs(gn.grad.bias:sum()) > 0)
    T.errors(function() nn.GroupNorm(3, 8) end, '3 groups do not divide 8 channels')
end

function tests.softmax_rows_sum_to_one_and_backward_matches_formula()
    local rng = autonad.rng(5)
    local sm = nn.Softmax()
    local x, dy = rand(rng, 3, 5), rand(rng, 3, 5)
    local y = sm:forward(x)
    local dx = sm:backward(x, dy)
    for i = 1, 3 do
        local s, dot = 0, 0
        for j = 1, 5 do s = s + y:get(i, j); dot = dot + dy:get(i, j) * y:get(i, j) end
        T.near(s, 1, 1e-6)
        for j = 1, 5 do T.near(dx:get(i, j), y:get(i, j) * (dy:get(i, j) - dot), 1e-6) end
    end
end

-- q, k, v [N, L, heads*d] viewed as [N, heads, L, d]; out = softmax(q k^T / sqrt(d)) v per head,
-- written straight into the per-head view of out [N, L, heads*d].
function tests.attention_through_ffi_matmul_equals_plain_loop()
    local rng = autonad.rng(6)
    local N, L, H, D = 2, 5, 2, 32
    local q, k, v = rand(rng, N, L, H * D), rand(rng, N, L, H * D), rand(rng, N, L, H * D)
    local out = autonad.tensor(N, L, H * D)
    local function heads(t) return t:view(N, L, H, D):permute(1, 3, 2, 4) end
    local s, p = autonad.tensor(N, H, L, L), autonad.tensor()
    local scale = 1 / math.sqrt(D)
    T.eq(C.nad_matmul(0, 1, scale, heads(q), heads(k), 0, s), 0)
    T.eq(C.nad_softmax_forward(s, p), 0)
    T.eq(C.nad_matmul(0, 0, 1, p, heads(v), 0, heads(out)), 0)
    for n = 1, N do
        for h = 1, H do
            local c0 = (h - 1) * D
            for i = 1, L do
                local sc, mx = {}, -math.huge
                for j = 1, L do
                    local acc = 0
                    for e = 1, D do acc = acc + q:get(n, i, c0 + e) * k:get(n, j, c0 + e) end
                    sc[j] = acc * scale
                    mx = math.max(mx, sc[j])
                end
                local z = 0
                for j = 1, L do sc[j] = math.exp(sc[j] - mx); z = z + sc[j] end
                for e = 1, D do
                    local acc = 0
                    for j = 1, L do acc = acc + sc[j] / z * v:get(n, j, c0 + e) end
                    T.near(out:get(n, i, c0 + e), acc, 1e-5)
                end
            end
        end
    end
end

return tests
