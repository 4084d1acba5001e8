-- autonad.supernet.block: one hybrid block of the encoder (docs/supernet.md):
--   x = x + DropPath(Mixer(LN1(x)));  x = x + DropPath(MixFFN(LN2(x)))
-- Its q / kv / proj projections are shared by every mixer it can choose; widths, the MLP
-- ratio and the operator are selected per subnet.
local class = require 'autonad.class'
local core = require 'autonad.ffi'
local layers = require 'autonad.supernet.layers'
local mixers = require 'autonad.supernet.mixers'
local buffers = require 'autonad.supernet.buffers'
local workspace = require('autonad.workspace').default
local C, check = core.C, core.check

-- Inference (gradients off, not training) and the Mix-FFN's backward run fused operators
-- (layers.FUSED).
local FUSED = layers.FUSED

local Block = class('Block')
Block.ACT = { 'x1', 'x2', 'act', 'm', 'f', 'mask1', 'mask2' }
Block.GRAD = { 'dact', 'dx1', 'dx', 'dm', 'df' }

--- opts: c_max, ratio_max, sr, operators (list), drop_path (this block's rate)
function Block:init(P, prefix, opts)
    self.drop_path = opts.drop_path
    self.norm1 = layers.LayerNorm.new(P, prefix .. 'norm1', opts.c_max, 1e-6)
    self.shared = {
        q = layers.Linear.new(P, prefix .. 'q', opts.c_max, opts.c_max),
        kv = layers.Linear.new(P, prefix .. 'kv', opts.c_max, 2 * opts.c_max),
        proj = layers.Linear.new(P, prefix .. 'proj', opts.c_max, opts.c_max),
    }
    self.mixers = {}
    for _, op in ipairs(opts.operators) do
        self.mixers[op] = mixers[op].new(P, prefix, self.shared, opts.c_max, opts.sr)
    end
    local hd_max = math.floor(opts.c_max * opts.ratio_max)
    self.norm2 = layers.LayerNorm.new(P, prefix .. 'norm2', opts.c_max, 1e-6)
    self.fc1 = layers.Linear.new(P, prefix .. 'fc1', opts.c_max, hd_max)
    self.dw = layers.Conv.new(P, prefix .. 'dw', hd_max, hd_max, { k = 3, pad = 1, depthwise = true })
    self.fc2 = layers.Linear.new(P, prefix .. 'fc2', hd_max, opts.c_max)
    self.own = buffers.Pool.new()
    self:bind(self.own, buffers.Pool.new())
end

--- Takes the block's and its layers' activations from pool act and their gradients from pool
--- grad (buffers.lua: the memory plan). Every block may share one pool of each: a block reads
--- its input x only before it writes x2, and dy only before it writes dx.
function Block:bind(act, grad)
    self.act_pool, self.grad_pool = act, grad
    buffers.bind(self, act, grad)
    for _, nm in ipairs({ 'norm1', 'norm2', 'fc1', 'dw', 'fc2' }) do
        buffers.bind(self[nm], act, grad, nm .. '.')
    end
    for nm, l in pairs(self.shared) do buffers.bind(l, act, grad, nm .. '.') end
    for op, m in pairs(self.mixers) do m:bind(act, grad, op .. '.', 'mixer.') end
    -- the two branch outputs are read only by their residual adds, never by a backward: one
    -- buffer each for every block (the grad pool is idle during a forward)
    self.shared.proj.y, self.fc2.y = grad:get('proj.y'), grad:get('fc2.y')
    -- Mix-FFN's backward is a chain fc2 -> GELU -> dw -> fc1: dw's input gradient can reuse
    -- fc2's, dead once GELU's backward has read it
    self.dw.dx = grad:get('fc2.dx')
    self:bind_projections()
end

-- q's and kv's outputs are read by the attention and conv mixers' backward, not by the mlp
-- mixer's (it keeps its own shifted maps): with mlp they are temporaries of the grad pool
function Block:bind_projections()
    local pool = self.op == 'mlp' and self.grad_pool or self.act_pool
    self.shared.q.y, self.shared.kv.y = pool:get('q.y'), pool:get('kv.y')
end

--- Selects width c, MLP ratio and operator for this subnet.
function Block:select(c, ratio, op)
    local mixer = self.mixers[op]
    if not mixer then error('autonad: operator ' .. tostring(op) .. ' is not built in this block', 2) end
    self.mixer, self.c, self.op = mixer, c, op
    self:bind_projections()
    self.norm1:select(c)
    self.shared.q:select(c, c)
    self.shared.kv:select(c, 2 * c)
    self.shared.proj:select(c, c)
    mixer:select(c)
    local hd = math.floor(c * ratio)
    self.norm2:select(c)
    self.fc1:select(c, hd)
    self.dw:select(hd, hd)
    self.fc2:select(hd, c)
end

-- y = x + DropPath(branch): drop-path only while training with a rate > 0
local function residual(self, x, branch, mask, dropped, out, rng)
    if self.training and self.drop_path > 0 then
        check(C.nad_droppath_forward(rng, self.drop_path, branch, dropped, mask))
        self.dropped, branch = true, dropped
    end
    check(C.nad_add(1, x, 1, branch, out))
    return out
end

--- x [N,H,W,C] -> [N,H,W,C]; rng draws the drop-path masks while training.
function Block:forward(x, rng)
    self.dropped = false
    local a1 = self.norm1:forward(x)
    if FUSED and not self.grad_enabled and not self.training then
        -- inference, in place on x (dead after this block; nothing is kept for a backward,
        -- which Supernet:backward refuses): the mixer's proj adds into x in its product's pass,
        -- then LN2, the Mix-FFN and its residual add run in row bands (mixffn.c), the
        -- normalised and hidden maps never whole
        local x1 = self.mixer:forward(a1, x)
        local n2, fc1, dw, fc2 = self.norm2.v, self.fc1.v, self.dw.v, self.fc2.v
        check(C.nad_mixffn_ln_forward(workspace, self.norm2.eps, n2.g.value, n2.b.value, x1,
            fc1.w.value, fc1.b and fc1.b.value, dw.w.value, dw.b and dw.b.value, fc2.w.value,
            fc2.b and fc2.b.value, x1))
        return x1
    end
    local m = self.mixer:forward(a1)
    residual(self, x, m, self.mask1, self.m, self.x1, rng)
    local a2 = self.norm2:forward(self.x1)
    -- dw3x3 and GELU in one pass; the pre-activation is stored for GELU's backward only when
    -- gradients are on (a backward may follow: Supernet:backward refuses one otherwise)
    self.dw:forward_gelu(self.fc1:forward(a2), self.act, self.grad_enabled)
    local f = self.fc2:forward(self.act)
    residual(self, self.x1, f, self.mask2, self.f, self.x2, rng)
    return self.x2
end

--- dy may be the next block's dx, the same tensor as self.dx (one shared gradient pool): it is
--- read only before self.dx is written.
function Block:backward(x, dy)
    -- second residual: d x1 = dy + LN2'(FFN'(DropPath'(dy)))
    local df = dy
    if self.dropped then check(C.nad_droppath_backward(self.mask2, dy, self.df)); df = self.df end
    local dact = self.fc2:backward(self.act, df)
    local dh
    if FUSED then -- GELU's and the conv's backward in one pass, dw.dx written over dact
        dh = self.dw:backward_gelu(self.fc1.y, dact)
    else
        check(C.nad_gelu_backward(self.dw.y, dact, self.dact))
        dh = self.dw:backward(self.fc1.y, self.dact)
    end
    local da2 = self.fc1:backward(self.norm2.y, dh)
    self.norm2:backward_add(self.x1, da2, dy, self.dx1)
    -- first residual
    local dm = self.dx1
    if self.dropped then check(C.nad_droppath_backward(self.mask1, self.dx1, self.dm)); dm = self.dm end
    local da1 = self.mixer:backward(self.norm1.y, dm)
    self.norm1:backward_add(x, da1, self.dx1, self.dx)
    return self.dx
end

return Block
