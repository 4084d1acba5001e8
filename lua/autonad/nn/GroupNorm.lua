-- autonad.nn.GroupNorm: group norm on channels-last x[N,H,W,C]; mirrors core/ops/groupnorm.c.
--   nn.GroupNorm(groups, C, {eps = 1e-5}): weight ones and bias zeros [C], as in PyTorch.
local class = require 'autonad.class'
local core = require 'autonad.ffi'
local tensor = require 'autonad.tensor'
local Module = require 'autonad.nn.Module'
local C, check = core.C, core.check

local GroupNorm = class('GroupNorm', Module)

function GroupNorm:init(groups, channels, opts)
    Module.init(self)
    opts = opts or {}
    if groups < 1 or channels % groups ~= 0 then
        error(string.format('autonad: nn.GroupNorm: %d groups do not divide %d channels',
            groups, channels), 3)
    end
    self.groups, self.channels, self.eps = groups, channels, opts.eps or 1e-5
    self:add_param('weight', tensor.new(channels):fill(1))
    self:add_param('bias', tensor.new(channels))
    self.mean, self.rstd = tensor.new(), tensor.new() -- [N, groups], saved for backward
end

function GroupNorm:forward(x)
    check(C.nad_groupnorm_forward(self.groups, self.eps, x, self.weight, self.bias, self.output,
        self.mean, self.rstd))
    return self.output
end

function GroupNorm:backward(x, dy)
    check(C.nad_groupnorm_backward(self.groups, x, self.weight, self.mean, self.rstd, dy,
        self.grad_input, self.grad.weight, self.grad.bias))
    return self.grad_input
end

function GroupNorm:__tostring()
    return string.format('nn.GroupNorm(%d, %d, eps=%g)', self.groups, self.channels, self.eps)
end

return GroupNorm
