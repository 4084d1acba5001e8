-- test_nn_conv2d.lua: nn.Conv2d through the FFI: shapes, a hand-computed case, initialisation
-- bounds, gradient accumulation, and the core's error reaching Lua.
local autonad = require 'autonad'
local nn = autonad.nn
local T = require 'testing'

local tests = {}

function tests.output_shape_and_parameters()
    local m = nn.Conv2d(6, 8, 3, { stride = 2, pad = 1, groups = 2, rng = autonad.rng(1) })
    local y = m:forward(autonad.tensor(2, 9, 7, 6))
    T.eq(table.concat(y:size(), 'x'), '2x5x4x8')
    T.eq(table.concat(m.weight:size(), 'x'), '8x3x3x3')
    local params = m:parameters()
    T.eq(#params, 2)
    T.eq(#nn.Conv2d(3, 4, 1, { bias = false }):parameters(), 1)
end

function tests.known_small_case()
    -- x = 1..9 on a 3x3 grid, a 2x2 kernel of ones, bias 0.5: window sums + 0.5
    local x = autonad.from_table({ { { { 1 }, { 2 }, { 3 } }, { { 4 }, { 5 }, { 6 } }, { { 7 }, { 8 }, { 9 } } } })
    local m = nn.Conv2d(1, 1, 2)
    m.weight:fill(1)
    m.bias:fill(0.5)
    T.all_near(m:forward(x), { 12.5, 16.5, 24.5, 28.5 }, 1e-6)
    -- dy = ones: dx counts the windows covering each pixel; dw sums each window position
    local dx = m:backward(x, autonad.tensor(1, 2, 2, 1):fill(1))
    T.all_near(dx, { 1, 2, 1, 2, 4, 2, 1, 2, 1 }, 1e-6)
    T.all_near(m.grad.weight, { 12, 16, 24, 28 }, 1e-6)
    T.near(m.grad.bias:get(1), 4, 1e-6)
end

function tests.init_is_pytorch_uniform_and_seeded()
    local a = nn.Conv2d(4, 6, 3, { rng = autonad.rng(7) })
    local b = nn.Conv2d(4, 6, 3, { rng = autonad.rng(7) })
    T.all_near(a.weight, b.weight, 0)
    local bound, maxabs = 1 / math.sqrt(4 * 9), 0
    for _, v in ipairs(a.weight:tolist()) do maxabs = math.max(maxabs, math.abs(v)) end
    for _, v in ipairs(a.bias:tolist()) do maxabs = math.max(maxabs, math.abs(v)) end
    T.ok(maxabs <= bound and maxabs > 0.5 * bound, 'weights span U(-1/sqrt(fan_in), 1/sqrt(fan_in))')
end

function tests.gradients_accumulate_across_backward_calls()
    local rng = autonad.rng(3)
    local m = nn.Conv2d(4, 4, 3, { pad = 1, groups = 4, rng = rng })
    local x = rng:uniform_(autonad.tensor(1, 5, 5, 4), -1, 1)
    local dy = rng:uniform_(autonad.tensor(1, 5, 5, 4), -1, 1)
    m:forward(x)
    m:backward(x, dy)
    local w1, b1 = m.grad.weight:tolist(), m.grad.bias:tolist()
    m:backward(x, dy)
    for i = 1, #w1 do w1[i] = 2 * w1[i] end
    for i = 1, #b1 do b1[i] = 2 * b1[i] end
    T.all_near(m.grad.weight, w1, 1e-5)
    T.all_near(m.grad.bias, b1, 1e-5)
    m:zero_grad()
    T.eq(m.grad.weight:sum(), 0)
end

function tests.first_layer_skips_grad_input()
    local m = nn.Conv2d(3, 2, 7, { stride = 4, pad = 3, grad_input = false })
    local x = autonad.tensor(1, 8, 8, 3):fill(1)
    m:forward(x)
    T.eq(m:backward(x, autonad.tensor(1, 2, 2, 2):fill(1)), nil)
    T.ok(m.grad.weight:sum() ~= 0)
end

function tests.errors_are_clear()
    local m = nn.Conv2d(3, 2, 3)
    T.errors(function() m:forward(autonad.tensor(1, 5, 5, 4)) end, 'conv2d_forward: x has 4 channels, w expects 3')
    T.errors(function() nn.Conv2d(6, 4, 3, { groups = 4 }) end, 'groups 4 must divide in 6 and out 4')
    T.errors(function() nn.Conv2d(3, 4, 3, { padding = 1 }) end, 'unknown option padding')
end

return tests
