-- autonad.supernet.mixers: the three token mixers of a hybrid block. All three run on the
-- block's ONE set of projections q, kv, proj (cross weight sharing, docs/supernet.md):
-- attention (PVT spatial reduction), conv (ACmix, intended layout) and mlp (S2-MLPv2 split
-- attention). Each mixer: forward(x) -> out, backward(x, dout) -> dx, with x = LN1(tokens)
-- as [N,H,W,C]. For inference (nothing kept for a backward), forward(x, residual) adds its
-- output into residual (the block's input) in the proj product's pass and returns it.
local ffi = require 'ffi'
local class = require 'autonad.class'
local core = require 'autonad.ffi'
local layers = require 'autonad.supernet.layers'
local Params = require 'autonad.supernet.params'
local buffers = require 'autonad.supernet.buffers'
local C, check = core.C, core.check

local M = {}
local HEAD_DIM = 32

-- y = a + b (y resized)
local function add(a, b, y) check(C.nad_add(1, a, 1, b, y)); return y end

---------------------------------------------------------------------------------------------
local Attention = class('Attention')
M.attention = Attention
Attention.ACT, Attention.GRAD = { 'A', 'O' }, { 'dA', 'dS', 'dq', 'dkv', 'dx' }

--- shared = {q, kv, proj} Linear layers; sr: spatial reduction ratio.
function Attention:init(P, prefix, shared, c_max, sr)
    self.shared, self.sr = shared, sr
    if sr > 1 then
        self.sr_conv = layers.Conv.new(P, prefix .. 'sr', c_max, c_max, { k = sr, stride = sr })
        self.sr_norm = layers.LayerNorm.new(P, prefix .. 'sr_norm', c_max, 1e-6)
    end
    local p = buffers.Pool.new()
    self:bind(p, p, '', '')
end

--- Activations from pool act under prefix, gradients from pool grad under gprefix (the
--- block's memory plan: one mixer runs per block, so all three may share gradient keys).
function Attention:bind(act, grad, prefix, gprefix)
    buffers.bind(self, act, grad, prefix, gprefix)
    if self.sr_conv then
        buffers.bind(self.sr_conv, act, grad, prefix .. 'sr.', gprefix .. 'sr.')
        buffers.bind(self.sr_norm, act, grad, prefix .. 'sr_norm.', gprefix .. 'sr_norm.')
    end
end

function Attention:select(c)
    if self.sr_conv then self.sr_conv:select(c, c); self.sr_norm:select(c) end
    self.c = c
end

-- per-head views: t [N,h*, L, 32] of a [N,H,W,k*C] tensor's first/second C channels
local function heads(t, n, l, h, part, parts)
    return t:view(n, l, parts * h, HEAD_DIM):permute(1, 3, 2, 4):narrow(2, part * h + 1, h)
end

function Attention:forward(x, residual)
    local sh, c = self.shared, self.c
    local n, hh, ww = x:size(1), x:size(2), x:size(3)
    local h, p = c / HEAD_DIM, hh * ww
    local q = sh.q:forward(x)
    local src = x
    if self.sr_conv then src = self.sr_norm:forward(self.sr_conv:forward(x)) end
    self.src = src
    local kv = sh.kv:forward(src)
    local pk = src:size(2) * src:size(3)
    self.n, self.h, self.p, self.pk = n, h, p, pk
    local qh, kh, vh = heads(q, n, p, h, 0, 1), heads(kv, n, pk, h, 0, 2), heads(kv, n, pk, h, 1, 2)
    -- the scores become the attention weights in place (the backward reads only A)
    self.A:resize(n, h, p, pk)
    check(C.nad_matmul(0, 1, 1 / math.sqrt(HEAD_DIM), qh, kh, 0, self.A))
    check(C.nad_softmax_forward(self.A, self.A))
    self.O:resize(n, hh, ww, c)
    check(C.nad_matmul(0, 0, 1, self.A, vh, 0, heads(self.O, n, p, h, 0, 1)))
    self.qh, self.kh, self.vh = qh, kh, vh
    if residual then return sh.proj:forward_acc(self.O, residual) end
    return sh.proj:forward(self.O)
end

function Attention:backward(x, dout)
    local sh = self.shared
    local n, h, p, pk = self.n, self.h, self.p, self.pk
    local dO = sh.proj:backward(self.O, dout)
    local dOh = heads(dO, n, p, h, 0, 1)
    self.dA:resize(n, h, p, pk)
    check(C.nad_matmul(0, 1, 1, dOh, self.vh, 0, self.dA))
    self.dkv:resize(self.src:size(1), self.src:size(2), self.src:size(3), 2 * self.c)
    check(C.nad_matmul(1, 0, 1, self.A, dOh, 0, heads(self.dkv, n, pk, h, 1, 2)))
    check(C.nad_softmax_backward(self.A, self.dA, self.dS))
    local scale = 1 / math.sqrt(HEAD_DIM)
    self.dq:resize(x:size())
    check(C.nad_matmul(0, 0, scale, self.dS, self.kh, 0, heads(self.dq, n, p, h, 0, 1)))
    check(C.nad_matmul(1, 0, scale, self.dS, self.qh, 0, heads(self.dkv, n, pk, h, 0, 2)))
    local dx_q = sh.q:backward(x, self.dq)
    local dsrc = sh.kv:backward(self.src, self.dkv)
    if self.sr_conv then
        dsrc = self.sr_conv:backward(x, self.sr_norm:backward(self.sr_conv.y, dsrc))
    end
    return add(dx_q, dsrc, self.dx)
end

---------------------------------------------------------------------------------------------
local Conv = class('ConvMixer')
M.conv = Conv
Conv.ACT, Conv.GRAD = { 'f', 'act' }, { 'dact', 'dq', 'dkv', 'dx' }

function Conv:init(P, prefix, shared, c_max)
    self.shared = shared
    local h_max = c_max / HEAD_DIM
    self.FW = P:add(prefix .. 'fc.weight', { 9, 3 * h_max }, Params.fill.conv(1))
    self.FB = P:add(prefix .. 'fc.bias', { 9 }, Params.fill.zeros)
    self.dep = layers.Conv.new(P, prefix .. 'dep', 9 * HEAD_DIM, c_max,
        { k = 3, pad = 1, groups = HEAD_DIM })
    self.norm = layers.LayerNorm.new(P, prefix .. 'conv_norm', c_max, 1e-6)
    self.cache = {}
    local p = buffers.Pool.new()
    self:bind(p, p, '', '')
end

function Conv:bind(act, grad, prefix, gprefix)
    buffers.bind(self, act, grad, prefix, gprefix)
    buffers.bind(self.dep, act, grad, prefix .. 'dep.', gprefix .. 'dep.')
    buffers.bind(self.norm, act, grad, prefix .. 'norm.', gprefix .. 'norm.')
end

function Conv:select(c)
    local v = self.cache[c]
    if not v then
        local fn = function(t) return t:narrow(2, 1, 3 * c / HEAD_DIM) end
        v = { fn = fn, w = fn(self.FW.value), gw = fn(self.FW.grad) }
        self.cache[c] = v
    end
    self.v, self.c = v, c
    Params.activate(self.FW, v.fn)
    Params.activate(self.FB, function(t) return t end)
    self.dep:select(9 * HEAD_DIM, c)
    self.norm:select(c)
end

function Conv:forward(x, residual)
    local sh = self.shared
    local q, kv = sh.q:forward(x), sh.kv:forward(x)
    check(C.nad_acmix_fc_forward(HEAD_DIM, q, kv, self.v.w, self.FB.value, self.f))
    local g = self.norm:forward(self.dep:forward(self.f))
    check(C.nad_gelu_forward(g, self.act))
    if residual then return sh.proj:forward_acc(self.act, residual) end
    return sh.proj:forward(self.act)
end

function Conv:backward(x, dout)
    local sh = self.shared
    local dact = sh.proj:backward(self.act, dout)
    check(C.nad_gelu_backward(self.norm.y, dact, self.dact))
    local df = self.dep:backward(self.f, self.norm:backward(self.dep.y, self.dact))
    check(C.nad_acmix_fc_backward(HEAD_DIM, sh.q.y, sh.kv.y, self.v.w, df, self.dq, self.dkv,
        self.v.gw, self.FB.grad))
    local dxq = sh.q:backward(x, self.dq)
    return add(dxq, sh.kv:backward(x, self.dkv), self.dx)
end

---------------------------------------------------------------------------------------------
local Mlp = class('MlpMixer')
M.mlp = Mlp
Mlp.ACT = { 'v', 'x1', 'x2', 'a', 'g1', 'wts', 'y', 'wbuf1', 'wbuf2', 'wbuf3' }
Mlp.GRAD = { 'dx1', 'dx2', 'dx3', 'dwts', 'dr2', 'dg1', 'ds', 'dq', 'dk', 'dkv', 'dx', 'dw1', 'dw2', 'dw3' }

local SHIFT1 = ffi.new('int32_t[4]', C.NAD_SHIFT_DOWN, C.NAD_SHIFT_UP, C.NAD_SHIFT_RIGHT, C.NAD_SHIFT_LEFT)
local SHIFT2 = ffi.new('int32_t[4]', C.NAD_SHIFT_RIGHT, C.NAD_SHIFT_LEFT, C.NAD_SHIFT_DOWN, C.NAD_SHIFT_UP)

function Mlp:init(P, prefix, shared, c_max)
    self.shared = shared
    self.rw1 = layers.Linear.new(P, prefix .. 'reweight1', c_max, c_max / 4)
    self.rw2 = layers.Linear.new(P, prefix .. 'reweight2', c_max / 4, 3 * c_max)
    self.mlp = layers.Linear.new(P, prefix .. 'mlp', c_max, c_max)
    self.wv = {}
    self.parts, self.sizes = ffi.new('nad_tensor *[2]'), ffi.new('int64_t[2]')
    local p = buffers.Pool.new()
    self:bind(p, p, '', '')
end

function Mlp:bind(act, grad, prefix, gprefix)
    buffers.bind(self, act, grad, prefix, gprefix)
    -- read by no backward (k only through its shift, s and t only by the next step): temporaries
    self.k, self.s, self.t = grad:get(gprefix .. 'k'), grad:get(gprefix .. 's'), grad:get(gprefix .. 't')
    -- branch weights: wbuf[i] holds column i of wts as [1,N,1,1,C]; wv[i] views it as [N,1,1,C]
    self.wbuf = { self.wbuf1, self.wbuf2, self.wbuf3 }
    self.dw = { self.dw1, self.dw2, self.dw3 }
    for _, nm in ipairs({ 'rw1', 'rw2', 'mlp' }) do
        buffers.bind(self[nm], act, grad, prefix .. nm .. '.', gprefix .. nm .. '.')
    end
end

function Mlp:select(c)
    self.c = c
    self.rw1:select(c, c / 4)
    self.rw2:select(c / 4, 3 * c)
    self.mlp:select(c, c)
end

-- branch weight i as [N,1,1,C] <-> column i of wts [N,C,3]
local function branch_view(wts, n, c, i)
    return wts:view(n, 1, 1, c, 3):permute(5, 1, 2, 3, 4):narrow(1, i + 1, 1)
end

-- the branch weights wts [N,C,3]: pooled sum -> rw1 -> GELU -> rw2 -> softmax over branches
function Mlp:branch_weights(n, c)
    check(C.nad_gelu_forward(self.rw1:forward(self.a), self.g1))
    local r2 = self.rw2:forward(self.g1)                       -- [N,1,1,3C]
    self.wts:resize(n, c, 3)
    check(C.nad_softmax_forward(r2:view(n, c, 3), self.wts))
end

--- inference (no backward after it), its output added into residual: the branches read in
--- place, two passes over the maps (split_attention.c) instead of split, shifts, adds and
--- multiplies; the same bits
function Mlp:forward_inference(x, residual)
    local sh, c = self.shared, self.c
    local q, kv = sh.q:forward(x), sh.kv:forward(x)
    check(C.nad_split_attention_pool(SHIFT1, SHIFT2, q, kv, self.a))
    self:branch_weights(x:size(1), c)
    check(C.nad_split_attention_mix(SHIFT1, SHIFT2, q, kv, self.wts, self.y))
    return sh.proj:forward_acc(self.mlp:forward(self.y), residual)
end

function Mlp:forward(x, residual)
    if residual then return self:forward_inference(x, residual) end
    local sh, c = self.shared, self.c
    local n = x:size(1)
    local q, kv = sh.q:forward(x), sh.kv:forward(x)
    self.parts[0], self.parts[1] = self.k, self.v
    self.sizes[0], self.sizes[1] = c, c
    check(C.nad_split(kv, 3, 2, self.sizes, self.parts))
    check(C.nad_shift_forward(SHIFT1, q, self.x1))
    check(C.nad_shift_forward(SHIFT2, self.k, self.x2))
    add(self.x1, self.x2, self.s)
    add(self.s, self.v, self.s)
    check(C.nad_adaptive_avgpool2d_forward(1, 1, self.s, self.a))
    self:branch_weights(n, c)
    local xs = { self.x1, self.x2, self.v }
    for i = 1, 3 do
        local w = self.wbuf[i]:resize(1, n, 1, 1, c):copy(branch_view(self.wts, n, c, i - 1)):view(n, 1, 1, c)
        self.wv[i] = w
        if i == 1 then check(C.nad_mul(xs[i], w, self.y))
        else
            check(C.nad_mul(xs[i], w, self.t))
            add(self.y, self.t, self.y)
        end
    end
    return sh.proj:forward(self.mlp:forward(self.y))
end

function Mlp:backward(x, dout)
    local sh, c = self.shared, self.c
    local n = x:size(1)
    local dy = self.mlp:backward(self.y, sh.proj:backward(self.mlp.y, dout))
    local xs, dxs = { self.x1, self.x2, self.v }, { self.dx1, self.dx2, self.dx3 }
    self.dwts:resize(n, c, 3)
    for i = 1, 3 do
        self.dw[i]:resize(n, 1, 1, c):zero()
        check(C.nad_mul_backward(xs[i], self.wv[i], dy, dxs[i], self.dw[i]))
        branch_view(self.dwts, n, c, i - 1):copy(self.dw[i]:view(1, n, 1, 1, c))
    end
    self.dr2:resize(n, c, 3)
    check(C.nad_softmax_backward(self.wts, self.dwts, self.dr2))
    local dg1 = self.rw2:backward(self.g1, self.dr2:view(n, 1, 1, 3 * c))
    check(C.nad_gelu_backward(self.rw1.y, dg1, self.dg1))
    local da = self.rw1:backward(self.a, self.dg1)
    check(C.nad_adaptive_avgpool2d_backward(self.x1, da, self.ds)) -- x1 has s's shape
    for i = 1, 3 do add(dxs[i], self.ds, dxs[i]) end
    check(C.nad_shift_backward(SHIFT1, self.dx1, self.dq))
    check(C.nad_shift_backward(SHIFT2, self.dx2, self.dk))
    self.parts[0], self.parts[1] = self.dk, self.dx3
    check(C.nad_concat(2, ffi.cast('const nad_tensor *const *', self.parts), 3, self.dkv))
    local dxq = sh.q:backward(x, self.dq)
    return add(dxq, sh.kv:backward(x, self.dkv), self.dx)
end

return M
