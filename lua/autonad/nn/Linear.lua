-- autonad.nn.Linear: y = x w^T + b over the last dim; mirrors core/ops/linear.c.
--   nn.Linear(in, out, {bias = true, rng = <nad_rng>}): weight [out, in] and bias [out] drawn
--   as PyTorch does (kaiming_uniform with a = sqrt(5): U(-1/sqrt(in), 1/sqrt(in)) for both).
local class = require 'autonad.class'
local core = require 'autonad.ffi'
local tensor = require 'autonad.tensor'
local random = require 'autonad.random'
local Module = require 'autonad.nn.Module'
local C, check = core.C, core.check

local Linear = class('Linear', Module)

function Linear:init(in_features, out_features, opts)
    Module.init(self)
    opts = opts or {}
    self.in_features, self.out_features = in_features, out_features
    local rng = opts.rng or random.default
    local bound = in_features > 0 and 1 / math.sqrt(in_features) or 0
    self:add_param('weight', rng:uniform_(tensor.new(out_features, in_features), -bound, bound))
    if opts.bias ~= false then
        self:add_param('bias', rng:uniform_(tensor.new(out_features), -bound, bound))
    end
end

function Linear:forward(x)
    check(C.nad_linear_forward(x, self.weight, self.bias, self.output))
    return self.output
end

function Linear:backward(x, dy)
    check(C.nad_linear_backward(x, self.weight, dy, self.grad_input, self.grad.weight,
        self.bias and self.grad.bias or nil))
    return self.grad_input
end

function Linear:__tostring()
    return string.format('nn.Linear(%d -> %d%s)', self.in_features, self.out_features,
        self.bias and '' or ', no bias')
end

return Linear
