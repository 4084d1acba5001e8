-- fused_ops.lua: each fused operator beside the operators it replaces, on the same tensors,
-- alternated, medians of repeats; prints both times and their ratio. The maps are a batch of
-- 8 at the smallest and middle subnets' first stage (C channels, the Mix-FFN's hidden width
-- HD) at 200x200 input (50x50 maps) unless given.
--   env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE AUTONAD_LIB=$PWD/build/libautonad.so \
--       luajit bench/fused_ops.lua [threads=1] [side=50] [C=32] [HD=256]
local dir = debug.getinfo(1, 'S').source:match('^@(.*)/[^/]*$') or '.'
package.path = table.concat({ dir .. '/../lua/?.lua', dir .. '/../lua/?/init.lua', package.path }, ';')
local autonad = require 'autonad'
local ffi = require 'ffi'
local core = require 'autonad.ffi'
local C, check = core.C, core.check
local ws = require('autonad.workspace').default
local now = require('autonad.latency').now_ms

local threads, S = tonumber(arg[1] or 1), tonumber(arg[2] or 50)
local CH, HD, N = tonumber(arg[3] or 32), tonumber(arg[4] or 256), 8
autonad.set_num_threads(threads)
print(string.format('%s | %d thread(s), maps %dx%dx%d, C = %d, hidden %d', C.nad_blas_info() ~= nil
    and ffi.string(C.nad_blas_info()) or '?', threads, N, S, S, CH, HD))

local function rand(seed, ...)
    local t = autonad.tensor(...)
    autonad.rng(seed):normal_(t)
    return t
end

-- median ms of `reps` calls, alternating a and b `rounds` times
local function pair(a, b, reps, rounds)
    local ta, tb = {}, {}
    a(); b()
    for r = 1, rounds do
        local t0 = now(); for _ = 1, reps do a() end; ta[r] = (now() - t0) / reps
        t0 = now(); for _ = 1, reps do b() end; tb[r] = (now() - t0) / reps
    end
    table.sort(ta); table.sort(tb)
    return ta[math.floor(rounds / 2) + 1], tb[math.floor(rounds / 2) + 1]
end

local function report(name, a, b)
    print(string.format('%-44s unfused %8.3f ms  fused %8.3f ms  unfused/fused %.2f', name, a, b, a / b))
end

-- Mix-FFN's GELU + depthwise 3x3 backward (training)
do
    local p = ffi.new('nad_conv2d_params', 1, 1, 1, HD)
    local x, w, b = rand(1, N, S, S, HD), rand(2, HD, 3, 3, 1), rand(3, HD)
    local pre, act = autonad.tensor(N, S, S, HD), autonad.tensor(N, S, S, HD)
    check(C.nad_conv2d_gelu_forward(ws, p, x, w, b, pre, act))
    local dact, da, dx = rand(4, N, S, S, HD), autonad.tensor(N, S, S, HD), autonad.tensor(N, S, S, HD)
    local dw, db = autonad.tensor(HD, 3, 3, 1), autonad.tensor(HD)
    report(string.format('gelu + depthwise backward [%d,%d,%d,%d]', N, S, S, HD), pair(function()
        check(C.nad_gelu_backward(pre, dact, da))
        check(C.nad_conv2d_backward(ws, p, x, w, da, dx, dw, db))
    end, function()
        check(C.nad_conv2d_gelu_backward(ws, p, x, w, pre, dact, dx, dw, db))
    end, 3, 9))
end

-- LayerNorm backward + the residual add (training)
do
    local x, g, b = rand(5, N, S, S, CH), rand(6, CH), rand(7, CH)
    local y, m, s = autonad.tensor(1), autonad.tensor(1), autonad.tensor(1)
    check(C.nad_layernorm_forward(1e-6, x, g, b, y, m, s))
    local dy, r = rand(8, N, S, S, CH), rand(9, N, S, S, CH)
    local dx, out, dg, dbt = autonad.tensor(N, S, S, CH), autonad.tensor(N, S, S, CH), autonad.tensor(CH), autonad.tensor(CH)
    report(string.format('layernorm backward + add [%d,%d,%d,%d]', N, S, S, CH), pair(function()
        check(C.nad_layernorm_backward(x, g, m, s, dy, dx, dg, dbt))
        check(C.nad_add(1, r, 1, dx, out))
    end, function()
        check(C.nad_layernorm_backward_add(x, g, m, s, dy, r, out, dg, dbt))
    end, 5, 9))
end

-- the decoder's GroupNorm + ReLU backward (training): 2 C channels in 8 groups (the CPU
-- recipes' decoder width D = 64 at the default C = 32)
do
    local D = 2 * CH
    local x, g, b = rand(19, N, S, S, D), rand(20, D), rand(21, D)
    local y, m, s = autonad.tensor(1), autonad.tensor(1), autonad.tensor(1)
    check(C.nad_groupnorm_relu_forward(8, 1e-5, x, g, b, y, m, s))
    local dy, dn, dx = rand(22, N, S, S, D), autonad.tensor(N, S, S, D), autonad.tensor(N, S, S, D)
    local dg, dbt = autonad.tensor(D), autonad.tensor(D)
    report(string.format('groupnorm + relu backward [%d,%d,%d,%d]', N, S, S, D), pair(function()
        check(C.nad_relu_backward(y, dy, dn))
        check(C.nad_groupnorm_backward(8, x, g, m, s, dn, dx, dg, dbt))
    end, function()
        check(C.nad_groupnorm_relu_backward(8, x, g, b, m, s, dy, dx, dg, dbt))
    end, 5, 9))
end

-- LN2 + Mix-FFN + residual (inference, in place on the block's map)
do
    local x, g, b = rand(10, N, S, S, CH), rand(11, CH), rand(12, CH)
    local w1, b1, wd, bd = rand(13, HD, CH), rand(14, HD), rand(15, HD, 3, 3, 1), rand(16, HD)
    local w2, b2 = rand(17, CH, HD), rand(18, CH)
    local a, m, s, y = autonad.tensor(1), autonad.tensor(1), autonad.tensor(1), autonad.tensor(N, S, S, CH)
    C.nad_set_weights_frozen(1)
    report(string.format('layernorm + mixffn [%d,%d,%d,%d], hidden %d', N, S, S, CH, HD), pair(function()
        check(C.nad_tensor_copy(y, x))
        check(C.nad_layernorm_forward(1e-6, y, g, b, a, m, s))
        check(C.nad_mixffn_forward(ws, a, w1, b1, wd, bd, w2, b2, y, y))
    end, function()
        check(C.nad_tensor_copy(y, x))
        check(C.nad_mixffn_ln_forward(ws, 1e-6, g, b, y, w1, b1, wd, bd, w2, b2, y))
    end, 5, 9))
    C.nad_set_weights_frozen(0)
end
