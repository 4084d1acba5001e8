-- autonad.nn.GELU: y = x Phi(x) (erf form); mirrors core/ops/activation.c.
local class = require 'autonad.class'
local core = require 'autonad.ffi'
local Module = require 'autonad.nn.Module'
local C, check = core.C, core.check

local GELU = class('GELU', Module)

function GELU:forward(x)
    check(C.nad_gelu_forward(x, self.output))
    return self.output
end

function GELU:backward(x, dy)
    check(C.nad_gelu_backward(x, dy, self.grad_input))
    return self.grad_input
end

return GELU
