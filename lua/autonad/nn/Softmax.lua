-- autonad.nn.Softmax: softmax over the last dim; mirrors core/ops/softmax.c.
-- backward(x, dy) uses the output of the forward on that same x.
local class = require 'autonad.class'
local core = require 'autonad.ffi'
local Module = require 'autonad.nn.Module'
local C, check = core.C, core.check

local Softmax = class('Softmax', Module)

function Softmax:forward(x)
    check(C.nad_softmax_forward(x, self.output))
    return self.output
end

function Softmax:backward(x, dy)
    check(C.nad_softmax_backward(self.output, dy, self.grad_input))
    return self.grad_input
end

return Softmax
