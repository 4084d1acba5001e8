-- autonad.optim.AdamW: Adam with decoupled weight decay (param *= 1 - lr wd before the Adam
-- update), as PyTorch 1.13's torch.optim.AdamW; the supernet's optimiser (wd 0.05).
--   local opt = optim.AdamW(params, grads, {lr = 1e-3, weight_decay = 0.05})
local class = require 'autonad.class'
local Adam = require 'autonad.optim.Adam'

local AdamW = class('AdamW', Adam)

AdamW.options = {
    lr = { kind = 'number', default = 1e-3 },
    betas = { kind = 'betas', default = { 0.9, 0.999 } },
    eps = { kind = 'number', default = 1e-8 },
    weight_decay = { kind = 'number', default = 1e-2 }, -- PyTorch's default
}
AdamW.decoupled = 1

return AdamW
