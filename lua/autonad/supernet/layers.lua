-- autonad.supernet.layers: the weight-entangled layers the supernet is made of. Each holds
-- the largest weights (registered in a Params registry) and, after select(...), views of
-- them for the current subnet; forward / backward run the C operators on those views, so a
-- subnet's gradients land in the slices of the shared weights. Views are cached per choice:
-- a hot loop makes no new tensors. Used by block.lua, mfam.lua and heads.lua. Each layer lists
-- its buffers in ACT / GRAD; a new layer has private ones until its owner binds it into shared
-- pools (buffers.lua).
local ffi = require 'ffi'
local class = require 'autonad.class'
local core = require 'autonad.ffi'
local Params = require 'autonad.supernet.params'
local buffers = require 'autonad.supernet.buffers'
local workspace = require('autonad.workspace').default
local C, check = core.C, core.check
local init = Params.fill

local M = {}

-- Inference (gradients off) runs fused operators where it can: in the blocks (block.lua) the
-- mixer's residual add in its proj product (nad_linear_forward_acc), LN2 and the Mix-FFN
-- with its residual add in row bands (mixffn.c), the MLP mixer's split attention in two passes
-- (split_attention.c); in the head the resize inside the final conv (heads.lua). Training's
-- Mix-FFN backward makes GELU's gradient inside its depthwise conv's backward
-- (conv2d_gelu_backward.c), the decoder's ReLU backward runs inside GroupNorm's (GNReLU).
-- AUTONAD_FUSED=0 runs the separate GELU and depthwise operators instead (for A/B timing).
M.FUSED = os.getenv('AUTONAD_FUSED') ~= '0'

-- views {value, grad, fn} of entry e for view function fn, cached in cache[key]
local function views(cache, key, e, fn)
    local v = cache[key]
    if not v then
        v = { value = fn(e.value), grad = fn(e.grad), fn = fn }
        cache[key] = v
    end
    return v
end

local function leading(...)
    local n = { ... }
    return function(t)
        for d = 1, #n do if n[d] < t:size(d) then t = t:narrow(d, 1, n[d]) end end
        return t
    end
end

---------------------------------------------------------------------------------------------
-- Linear: y = x W[:out,:in]^T + b[:out]
local Linear = class('Linear')
M.Linear = Linear
Linear.ACT, Linear.GRAD = { 'y' }, { 'dx' }

-- private buffers for a new layer
local function own(layer)
    local p = buffers.Pool.new()
    return buffers.bind(layer, p, p)
end

function Linear:init(P, name, in_max, out_max, opts)
    opts = opts or {}
    self.W = P:add(name .. '.weight', { out_max, in_max }, opts.init or init.normal(0.02))
    if opts.bias ~= false then self.B = P:add(name .. '.bias', { out_max }, init.zeros) end
    self.cache = {}
    own(self)
end

function Linear:select(din, dout)
    local key = din * 100000 + dout
    local v = self.cache[key]
    if not v then
        v = { w = views({}, 1, self.W, leading(dout, din)) }
        if self.B then v.b = views({}, 1, self.B, leading(dout)) end
        self.cache[key] = v
    end
    self.v = v
    Params.activate(self.W, v.w.fn)
    if self.B then Params.activate(self.B, v.b.fn) end
    return self
end

function Linear:forward(x)
    local v = self.v
    check(C.nad_linear_forward(x, v.w.value, v.b and v.b.value, self.y))
    return self.y
end

--- y += x W^T + b (inference's residual adds, in the product's pass); returns y
function Linear:forward_acc(x, y)
    local v = self.v
    check(C.nad_linear_forward_acc(x, v.w.value, v.b and v.b.value, y))
    return y
end

--- need_dx = false skips the input gradient (the first layer).
function Linear:backward(x, dy, need_dx)
    local v = self.v
    check(C.nad_linear_backward(x, v.w.value, dy, need_dx ~= false and self.dx or nil,
        v.w.grad, v.b and v.b.grad))
    return self.dx
end

---------------------------------------------------------------------------------------------
-- Conv: y = conv(x, W[:co, :, :, :ci/groups]) + b[:co]; opts: k, stride, pad, dilation,
-- groups (fixed), depthwise (groups = channels), bias, init.
local Conv = class('Conv')
M.Conv = Conv
Conv.ACT, Conv.GRAD = { 'y' }, { 'dx' }

function Conv:init(P, name, ci_max, co_max, opts)
    self.k, self.depthwise = opts.k, opts.depthwise
    self.groups = opts.groups or 1
    local cin_w = opts.depthwise and 1 or ci_max / self.groups
    self.W = P:add(name .. '.weight', { co_max, opts.k, opts.k, cin_w },
        opts.init or init.conv(opts.depthwise and co_max or self.groups))
    if opts.bias ~= false then self.B = P:add(name .. '.bias', { co_max }, init.zeros) end
    self.params = ffi.new('nad_conv2d_params', opts.stride or 1, opts.pad or 0, opts.dilation or 1, self.groups)
    self.cache = {}
    own(self)
end

function Conv:select(ci, co)
    local key = ci * 100000 + co
    local v = self.cache[key]
    if not v then
        local cin_w = self.depthwise and 1 or ci / self.groups
        v = { w = views({}, 1, self.W, leading(co, self.k, self.k, cin_w)) }
        if self.B then v.b = views({}, 1, self.B, leading(co)) end
        self.cache[key] = v
    end
    self.v = v
    if self.depthwise then self.params.groups = ci end
    Params.activate(self.W, v.w.fn)
    if self.B then Params.activate(self.B, v.b.fn) end
    return self
end

function Conv:forward(x)
    local v = self.v
    check(C.nad_conv2d_forward(workspace, self.params, x, v.w.value, v.b and v.b.value, self.y))
    return self.y
end

--- act = GELU(conv(x)); keep_pre = false skips storing the pre-activation self.y (inference).
function Conv:forward_gelu(x, act, keep_pre)
    local v = self.v
    check(C.nad_conv2d_gelu_forward(workspace, self.params, x, v.w.value, v.b and v.b.value,
        keep_pre and self.y or nil, act))
    return act
end

--- The backward of act = GELU(conv(x)) for a depthwise stride-1 conv, from pre = self.y (kept
--- by forward_gelu) and dact, the gradient at act: GELU's gradient made a few rows at a time
--- and never stored. self.dx may be dact itself (consumed as it goes).
function Conv:backward_gelu(x, dact)
    local v = self.v
    check(C.nad_conv2d_gelu_backward(workspace, self.params, x, v.w.value, self.y, dact, self.dx,
        v.w.grad, v.b and v.b.grad))
    return self.dx
end

function Conv:backward(x, dy, need_dx)
    local v = self.v
    check(C.nad_conv2d_backward(workspace, self.params, x, v.w.value, dy,
        need_dx ~= false and self.dx or nil, v.w.grad, v.b and v.b.grad))
    return self.dx
end

---------------------------------------------------------------------------------------------
-- LayerNorm over the last dim, gamma[:C], beta[:C].
local LayerNorm = class('LayerNorm')
M.LayerNorm = LayerNorm
LayerNorm.ACT, LayerNorm.GRAD = { 'y', 'mean', 'rstd' }, { 'dx' }

function LayerNorm:init(P, name, c_max, eps)
    self.G = P:add(name .. '.weight', { c_max }, init.ones)
    self.B = P:add(name .. '.bias', { c_max }, init.zeros)
    self.eps = eps or 1e-6
    self.cache = {}
    own(self)
end

function LayerNorm:select(c)
    local v = self.cache[c]
    if not v then
        v = { g = views({}, 1, self.G, leading(c)), b = views({}, 1, self.B, leading(c)) }
        self.cache[c] = v
    end
    self.v = v
    Params.activate(self.G, v.g.fn)
    Params.activate(self.B, v.b.fn)
    return self
end

function LayerNorm:forward(x)
    local v = self.v
    check(C.nad_layernorm_forward(self.eps, x, v.g.value, v.b.value, self.y, self.mean, self.rstd))
    return self.y
end

function LayerNorm:backward(x, dy)
    local v = self.v
    check(C.nad_layernorm_backward(x, v.g.value, self.mean, self.rstd, dy, self.dx, v.g.grad, v.b.grad))
    return self.dx
end

--- out = r + the gradient at x (a residual branch's add in the same pass); out may be r.
function LayerNorm:backward_add(x, dy, r, out)
    local v = self.v
    check(C.nad_layernorm_backward_add(x, v.g.value, self.mean, self.rstd, dy, r, out, v.g.grad,
        v.b.grad))
    return out
end

---------------------------------------------------------------------------------------------
-- GroupNorm (channels-last) followed by ReLU: the decoder's unit after every conv, one pass
-- over the output forward; one activation is kept, not two. Its backward recomputes the
-- ReLU's mask from x inside the GroupNorm backward's two passes (no masked dy map).
local GNReLU = class('GNReLU')
M.GNReLU = GNReLU
GNReLU.ACT, GNReLU.GRAD = { 'y', 'mean', 'rstd' }, { 'dx' }

function GNReLU:init(P, name, c_max, groups)
    self.G = P:add(name .. '.weight', { c_max }, init.ones)
    self.B = P:add(name .. '.bias', { c_max }, init.zeros)
    self.groups = groups
    self.cache = {}
    own(self)
end

GNReLU.select = LayerNorm.select

function GNReLU:forward(x)
    local v = self.v
    check(C.nad_groupnorm_relu_forward(self.groups, 1e-5, x, v.g.value, v.b.value, self.y, self.mean,
        self.rstd))
    return self.y
end

function GNReLU:backward(x, dy)
    local v = self.v
    check(C.nad_groupnorm_relu_backward(self.groups, x, v.g.value, v.b.value, self.mean, self.rstd,
        dy, self.dx, v.g.grad, v.b.grad))
    return self.dx
end

---------------------------------------------------------------------------------------------
-- SlotConv: one searchable MFAM slot. Its kernel is a view of one 5x5 super-kernel
-- [Co_max,5,5,Ci_max] (1x1 centre tap, 3x3 centre crop, 5x5, dilated 3x3 crop, or the
-- diagonal of the centre crop as a depthwise kernel followed by its own pointwise conv).
local SlotConv = class('SlotConv')
M.SlotConv = SlotConv
SlotConv.ACT, SlotConv.GRAD = { 'y', 'xu', 'dw_out' }, { 'dx', 'dxu', 'ddw' }

local SLOT_TYPES = {
    ['1x1'] = { off = 3, k = 1, pad = 0, dil = 1 },
    ['3x3'] = { off = 2, k = 3, pad = 1, dil = 1 },
    ['5x5'] = { off = 1, k = 5, pad = 2, dil = 1 },
    dil3x3 = { off = 2, k = 3, pad = 2, dil = 2 },
    dw3x3 = { off = 2, k = 3, pad = 1, dil = 1 },
}

function SlotConv:init(P, name, ci_max, co_max)
    self.name = name
    self.W = P:add(name .. '.weight', { co_max, 5, 5, ci_max }, init.conv(1))
    self.PW = P:add(name .. '.pw', { co_max, ci_max }, init.conv(1))
    self.params = ffi.new('nad_conv2d_params', 1, 0, 1, 1)
    self.cache = {}
    own(self)
end

function SlotConv:select(ci, co, kind)
    local t = SLOT_TYPES[kind]
    if not t then error('autonad: unknown decoder conv type ' .. tostring(kind), 2) end
    local key = kind .. ci .. ',' .. co
    local v = self.cache[key]
    if not v then
        v = { t = t, kind = kind }
        if kind == 'dw3x3' then
            local u = math.min(ci, co)
            v.u = u
            -- the depthwise kernel dwk[c] = w[c, 1:4, 1:4, c], as a [u,3,3,1] view
            v.w = views({}, 1, self.W, function(x)
                return x:narrow(1, 1, u):narrow(2, 2, 3):narrow(3, 2, 3):narrow(4, 1, u)
                    :diagonal(1, 4):permute(3, 1, 2):unsqueeze(4)
            end)
            v.pw = views({}, 1, self.PW, leading(co, ci))
            v.pw_used = views({}, 1, self.PW, leading(co, u)) -- columns >= u see zero inputs
        else
            v.w = views({}, 1, self.W, function(x)
                return x:narrow(1, 1, co):narrow(2, t.off, t.k):narrow(3, t.off, t.k):narrow(4, 1, ci)
            end)
        end
        self.cache[key] = v
    end
    self.v, self.ci, self.co = v, ci, co
    self.params.pad, self.params.dilation = t.pad, t.dil
    self.params.groups = kind == 'dw3x3' and v.u or 1
    if kind == 'dw3x3' then
        Params.activate(self.W, v.w.fn, self.name .. '.dw')
        Params.activate(self.PW, v.pw.fn)
    else
        Params.activate(self.W, v.w.fn)
        self.PW.view = false
    end
    return self
end

function SlotConv:forward(x)
    local v = self.v
    if v.kind ~= 'dw3x3' then
        check(C.nad_conv2d_forward(workspace, self.params, x, v.w.value, nil, self.y))
        return self.y
    end
    local xin = x
    if v.u < self.ci then -- the depthwise part reads the first u channels only
        self.xu:resize(x:size(1), x:size(2), x:size(3), v.u):copy(x:narrow(4, 1, v.u))
        xin = self.xu
    end
    check(C.nad_conv2d_forward(workspace, self.params, xin, v.w.value, nil, self.dw_out))
    check(C.nad_linear_forward(self.dw_out, v.pw_used.value, nil, self.y))
    return self.y
end

function SlotConv:backward(x, dy, need_dx)
    local v = self.v
    need_dx = need_dx ~= false
    if v.kind ~= 'dw3x3' then
        check(C.nad_conv2d_backward(workspace, self.params, x, v.w.value, dy,
            need_dx and self.dx or nil, v.w.grad, nil))
        return self.dx
    end
    check(C.nad_linear_backward(self.dw_out, v.pw_used.value, dy, self.ddw, v.pw_used.grad, nil))
    local xin = v.u < self.ci and self.xu or x
    local dxin = v.u < self.ci and self.dxu or self.dx
    check(C.nad_conv2d_backward(workspace, self.params, xin, v.w.value, self.ddw,
        need_dx and dxin or nil, v.w.grad, nil))
    if need_dx and v.u < self.ci then
        self.dx:resize(x:size()):zero()
        self.dx:narrow(4, 1, v.u):copy(self.dxu)
    end
    return self.dx
end

return M
