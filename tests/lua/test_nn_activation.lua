-- test_nn_activation.lua: nn.GELU and nn.ReLU through the FFI, and nn.Sequential wiring.
local autonad = require 'autonad'
local nn = autonad.nn
local T = require 'testing'

local tests = {}

function tests.gelu_forward_backward()
    local x = autonad.from_table({ -1, 0, 2 })
    local g = nn.GELU()
    local y = g:forward(x)
    T.near(y:get(1), -0.15865525, 1e-6)
    T.near(y:get(3), 1.95449974, 1e-6)
    local dx = g:backward(x, autonad.from_table({ 1, 1, 1 }))
    T.near(dx:get(2), 0.5, 1e-6)
end

function tests.sequential_chains_backward()
    local x = autonad.from_table({ -1, 0.5, 2 })
    local s = nn.Sequential(nn.ReLU(), nn.GELU())
    s:forward(x)
    local dx = s:backward(x, autonad.from_table({ 1, 1, 1 }))
    T.eq(dx:get(1), 0)
    T.ok(dx:get(3) > 1)
end

function tests.unknown_layer_is_a_clear_error()
    T.errors(function() return nn.NoSuchLayer end, 'no layer nn.NoSuchLayer')
end

return tests
