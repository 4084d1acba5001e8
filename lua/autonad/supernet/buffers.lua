-- autonad.supernet.buffers: where the supernet's activations and gradients live (its memory
-- plan). Every layer names its buffers in two lists, ACT (what its forward writes) and GRAD
-- (what its backward writes), and takes them from pools by key. Tensors in a pool are made
-- on first use and kept; they only grow, so after the first step nothing is allocated.
--
-- The plan (docs/supernet.md, "Memory"):
--   * gradients are read once, by the layer before; so all encoder blocks take their gradient
--     buffers from one shared pool, and the decoder's backward reuses a handful of keys along
--     its chain;
--   * with gradients on, activations are kept per layer (the backward reads them);
--   * with gradients off (evaluation, search, latency, prediction), all blocks share one pool
--     and the decoder keeps only what a later step still reads.
local class = require 'autonad.class'
local tensor = require 'autonad.tensor'

local M = {}

local Pool = class('BufferPool')
M.Pool = Pool

function Pool:init() self.t = {} end

--- The tensor stored under key (an empty one the first time).
function Pool:get(key)
    local t = self.t[key]
    if not t then
        t = tensor.new()
        self.t[key] = t
    end
    return t
end

--- Bytes held by the pool's tensors (capacity in use now).
function Pool:bytes()
    local b = 0
    for _, t in pairs(self.t) do b = b + 4 * t:numel() end
    return b
end

--- Points layer's ACT fields at act:get(prefix .. field) and its GRAD fields at
--- grad:get((gprefix or prefix) .. field). act or grad may be nil to leave those as they are.
function M.bind(layer, act, grad, prefix, gprefix)
    prefix = prefix or ''
    gprefix = gprefix or prefix
    if act then for _, f in ipairs(layer.ACT) do layer[f] = act:get(prefix .. f) end end
    if grad then for _, f in ipairs(layer.GRAD) do layer[f] = grad:get(gprefix .. f) end end
    return layer
end

return M
