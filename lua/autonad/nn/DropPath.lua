-- autonad.nn.DropPath(p, opts): stochastic depth on x[N, ...]: in training each sample is
-- kept with probability 1 - p and scaled by 1/(1 - p), else zeroed; the identity when not
-- training or p = 0. Draws from opts.rng or the default generator, so a seed fixes the masks.
-- Mirrors core/ops/droppath.c.
local class = require 'autonad.class'
local core = require 'autonad.ffi'
local tensor = require 'autonad.tensor'
local random = require 'autonad.random'
local Module = require 'autonad.nn.Module'
local C, check = core.C, core.check

local DropPath = class('DropPath', Module)

function DropPath:init(p, opts)
    Module.init(self)
    opts = opts or {}
    self.p = p or 0
    if type(self.p) ~= 'number' or self.p < 0 or self.p > 1 then
        error('autonad: DropPath p must be in [0, 1], got ' .. tostring(p), 3)
    end
    self.rng = opts.rng
    self.mask = tensor.new()
    self.active = false
end

function DropPath:forward(x)
    self.active = self.train and self.p > 0
    if not self.active then
        self.output = x
        return x
    end
    if self.output == x then self.output = tensor.new() end -- it held x while inactive
    check(C.nad_droppath_forward(self.rng or random.default, self.p, x, self.output, self.mask))
    return self.output
end

function DropPath:backward(x, dy)
    if not self.active then
        self.grad_input = dy
        return dy
    end
    if self.grad_input == dy then self.grad_input = tensor.new() end
    check(C.nad_droppath_backward(self.mask, dy, self.grad_input))
    return self.grad_input
end

function DropPath:__tostring() return string.format('nn.DropPath(%g)', self.p) end

return DropPath
