-- autonad.nn.LayerNorm: layer norm over the last dim; mirrors core/ops/layernorm.c.
--   nn.LayerNorm(C, {eps = 1e-6}): weight ones and bias zeros [C], as PyTorch initialises them.
local class = require 'autonad.class'
local core = require 'autonad.ffi'
local tensor = require 'autonad.tensor'
local Module = require 'autonad.nn.Module'
local C, check = core.C, core.check

local LayerNorm = class('LayerNorm', Module)

function LayerNorm:init(channels, opts)
    Module.init(self)
    opts = opts or {}
    self.channels, self.eps = channels, opts.eps or 1e-6
    self:add_param('weight', tensor.new(channels):fill(1))
    self:add_param('bias', tensor.new(channels))
    self.mean, self.rstd = tensor.new(), tensor.new() -- saved by forward for backward
end

function LayerNorm:forward(x)
    check(C.nad_layernorm_forward(self.eps, x, self.weight, self.bias, self.output, self.mean,
        self.rstd))
    return self.output
end

function LayerNorm:backward(x, dy)
    check(C.nad_layernorm_backward(x, self.weight, self.mean, self.rstd, dy, self.grad_input,
        self.grad.weight, self.grad.bias))
    return self.grad_input
end

function LayerNorm:__tostring()
    return string.format('nn.LayerNorm(%d, eps=%g)', self.channels, self.eps)
end

return LayerNorm
