-- autonad.nn.AvgPool2d(k, stride, pad): k x k average pooling on x[N,H,W,C], zero padding
-- counted in the divisor (PyTorch's count_include_pad=True); stride defaults to k, pad to 0.
-- Mirrors core/ops/pool.c.
local class = require 'autonad.class'
local core = require 'autonad.ffi'
local Module = require 'autonad.nn.Module'
local C, check = core.C, core.check

local AvgPool2d = class('AvgPool2d', Module)

function AvgPool2d:init(k, stride, pad)
    Module.init(self)
    self.k, self.stride, self.pad = k, stride or k, pad or 0
end

function AvgPool2d:forward(x)
    check(C.nad_avgpool2d_forward(self.k, self.stride, self.pad, x, self.output))
    return self.output
end

function AvgPool2d:backward(x, dy)
    check(C.nad_avgpool2d_backward(self.k, self.stride, self.pad, x, dy, self.grad_input))
    return self.grad_input
end

function AvgPool2d:__tostring()
    return string.format('nn.AvgPool2d(%d, stride %d, pad %d)', self.k, self.stride, self.pad)
end

return AvgPool2d
