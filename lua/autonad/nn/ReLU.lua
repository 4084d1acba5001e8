-- autonad.nn.ReLU: y = max(x, 0); mirrors core/ops/activation.c.
local class = require 'autonad.class'
local core = require 'autonad.ffi'
local Module = require 'autonad.nn.Module'
local C, check = core.C, core.check

local ReLU = class('ReLU', Module)

function ReLU:forward(x)
    check(C.nad_relu_forward(x, self.output))
    return self.output
end

function ReLU:backward(x, dy)
    check(C.nad_relu_backward(x, dy, self.grad_input))
    return self.grad_input
end

return ReLU
