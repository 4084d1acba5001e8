-- autonad.nn.AdaptiveAvgPool2d(size): average pooling of x[N,H,W,C] to size x size (or
-- {h, w}) with PyTorch's bins; size 1 is global average pooling. Mirrors core/ops/pool.c.
local class = require 'autonad.class'
local core = require 'autonad.ffi'
local Module = require 'autonad.nn.Module'
local C, check = core.C, core.check

local AdaptiveAvgPool2d = class('AdaptiveAvgPool2d', Module)

function AdaptiveAvgPool2d:init(size)
    Module.init(self)
    if type(size) == 'table' then self.out_h, self.out_w = size[1], size[2]
    else self.out_h, self.out_w = size, size end
    if type(self.out_h) ~= 'number' or type(self.out_w) ~= 'number' then
        error('autonad: AdaptiveAvgPool2d needs a size (a number or {h, w})', 3)
    end
end

function AdaptiveAvgPool2d:forward(x)
    check(C.nad_adaptive_avgpool2d_forward(self.out_h, self.out_w, x, self.output))
    return self.output
end

function AdaptiveAvgPool2d:backward(x, dy)
    check(C.nad_adaptive_avgpool2d_backward(x, dy, self.grad_input))
    return self.grad_input
end

function AdaptiveAvgPool2d:__tostring()
    return string.format('nn.AdaptiveAvgPool2d(%dx%d)', self.out_h, self.out_w)
end

return AdaptiveAvgPool2d
