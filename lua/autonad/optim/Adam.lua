-- autonad.optim.Adam: Adam with L2 weight decay added to the gradient, as PyTorch 1.13's
-- torch.optim.Adam (bias correction by the step count, eps after the bias-corrected square
-- root); one nad_adam_step per parameter (core/optim/adam.c). AdamW derives from it.
-- Slices, step counts and state_dict: see autonad.optim.Optimizer.
--   local opt = optim.Adam(params, grads, {lr = 1e-4, betas = {0.9, 0.999}, eps = 1e-8})
local ffi = require 'ffi'
local class = require 'autonad.class'
local core = require 'autonad.ffi'
local Optimizer = require 'autonad.optim.Optimizer'
local C = core.C

local Adam = class('Adam', Optimizer)

Adam.options = {
    lr = { kind = 'number', default = 1e-3 },
    betas = { kind = 'betas', default = { 0.9, 0.999 } },
    eps = { kind = 'number', default = 1e-8 },
    weight_decay = { kind = 'number', default = 0 },
}
Adam.state_names = { 'exp_avg', 'exp_avg_sq' }
Adam.decoupled = 0

function Adam:_state_needed() return true end

function Adam:_prepare()
    local q = self._cparams
    if not q then
        q = ffi.new('nad_adam_params')
        self._cparams = q
    end
    q.lr, q.beta1, q.beta2, q.eps = self.lr, self.betas[1], self.betas[2], self.eps
    q.weight_decay, q.decoupled = self.weight_decay, self.decoupled
end

-- v = {param, grad, exp_avg, exp_avg_sq}; count is this parameter's step (1 on the first)
function Adam:_update(i, count, v)
    local q = self._cparams
    q.step = count
    if C.nad_adam_step(q, v[2], v[1], v[3], v[4]) ~= 0 then
        error('optim.' .. self.__name .. '.step: params[' .. i .. ']: ' ..
            ffi.string(C.nad_last_error()), 3)
    end
end

return Adam
