-- autonad.nn.Module: the base of every layer, in the Torch nn manner.
--   forward(x) -> self.output;  backward(x, dy) -> self.grad_input, and ACCUMULATES parameter
--   gradients;  parameters() -> params, grads;  zero_grad();  training() / evaluate().
-- A layer registers its weights with add_param; a container lists its children in
-- self.modules. Output and gradient buffers are kept and reused between calls.
local class = require 'autonad.class'
local tensor = require 'autonad.tensor'

local Module = class('Module')

function Module:init()
    self.output = tensor.new()
    self.grad_input = tensor.new()
    self.param_names = {}
    self.train = true
end

--- Registers tensor t as parameter `name` (self[name]) with a zero gradient self.grad[name].
function Module:add_param(name, t)
    self[name] = t
    self.grad = self.grad or {}
    self.grad[name] = tensor.new(t:size())
    self.param_names[#self.param_names + 1] = name
    return t
end

function Module:forward(x) error('autonad: ' .. self.__name .. ' has no forward', 2) end
function Module:backward(x, dy) error('autonad: ' .. self.__name .. ' has no backward', 2) end

--- Every parameter and its gradient, in a fixed order (own ones, then children's).
function Module:parameters(params, grads)
    params, grads = params or {}, grads or {}
    for _, name in ipairs(self.param_names) do
        params[#params + 1] = self[name]
        grads[#grads + 1] = self.grad[name]
    end
    for _, m in ipairs(self.modules or {}) do m:parameters(params, grads) end
    return params, grads
end

--- { ['0.weight'] = t, ... }: names that identify each parameter, for checkpoints.
function Module:named_parameters(prefix, out)
    prefix, out = prefix or '', out or {}
    for _, name in ipairs(self.param_names) do out[prefix .. name] = self[name] end
    for i, m in ipairs(self.modules or {}) do m:named_parameters(prefix .. (i - 1) .. '.', out) end
    return out
end

function Module:zero_grad()
    local _, grads = self:parameters()
    for _, g in ipairs(grads) do g:zero() end
end

function Module:training()
    self.train = true
    for _, m in ipairs(self.modules or {}) do m:training() end
    return self
end

function Module:evaluate()
    self.train = false
    for _, m in ipairs(self.modules or {}) do m:evaluate() end
    return self
end

function Module:__tostring() return 'nn.' .. self.__name end

return Module
