-- autonad.optim.SGD: stochastic gradient descent with momentum, dampening, Nesterov and L2
-- weight decay, as PyTorch 1.13's torch.optim.SGD; each step is one nad_sgd_step per parameter
-- (core/optim/sgd.c). Slices, step counts and state_dict: see autonad.optim.Optimizer.
--   local opt = optim.SGD(params, grads, {lr = 0.1, momentum = 0.9, nesterov = true})
local ffi = require 'ffi'
local class = require 'autonad.class'
local core = require 'autonad.ffi'
local Optimizer = require 'autonad.optim.Optimizer'
local C = core.C

local SGD = class('SGD', Optimizer)

SGD.options = {
    lr = { kind = 'number' }, -- required, as in PyTorch
    momentum = { kind = 'number', default = 0 },
    dampening = { kind = 'number', default = 0 },
    weight_decay = { kind = 'number', default = 0 },
    nesterov = { kind = 'boolean', default = false },
}
SGD.state_names = { 'momentum_buffer' }

function SGD:_state_needed() return self.momentum ~= 0 end

function SGD:_prepare()
    local q = self._cparams
    if not q then
        q = ffi.new('nad_sgd_params')
        self._cparams = q
    end
    q.lr, q.momentum, q.dampening = self.lr, self.momentum, self.dampening
    q.weight_decay, q.nesterov = self.weight_decay, self.nesterov and 1 or 0
end

-- v = {param, grad, momentum_buffer or false}; the buffer is the gradient on the first step
function SGD:_update(i, count, v)
    local buf = self.momentum ~= 0 and v[3] or nil
    if C.nad_sgd_step(self._cparams, count == 1 and 1 or 0, v[2], v[1], buf) ~= 0 then
        error('optim.SGD.step: params[' .. i .. ']: ' .. ffi.string(C.nad_last_error()), 3)
    end
end

return SGD
