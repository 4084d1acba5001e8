-- autonad.supernet.heads: what turns features into logits. Segmentation: MFAM logits at 1/4
-- resolution, resized to the input (align_corners) and a final 3x3 conv K -> K without bias.
-- Classification: pooled stage outputs through one linear layer stored per stage, so that
-- each stage's width slice stays aligned with its own columns (docs/supernet.md).
local class = require 'autonad.class'
local tensor = require 'autonad.tensor'
local core = require 'autonad.ffi'
local layers = require 'autonad.supernet.layers'
local Mfam = require 'autonad.supernet.mfam'
local buffers = require 'autonad.supernet.buffers'
local C, check = core.C, core.check
local workspace = require('autonad.workspace').default
local FUSED = layers.FUSED

local M = {}

---------------------------------------------------------------------------------------------
local Seg = class('SegHead')
M.seg = Seg

function Seg:init(P, space, widths_max, k)
    self.k = k
    self.mfam = Mfam.new(P, space.decoder.slots, widths_max, space.decoder.width, k, space.decoder.groups)
    self.out_conv = layers.Conv.new(P, 'head.out_conv', k, k, { k = 3, pad = 1, bias = false })
    self.own = buffers.Pool.new()
    self:bind(true, buffers.Pool.new(), buffers.Pool.new())
end

--- The memory plan (mfam.lua's Mfam:bind): the head's gradients take the decoder chain's
--- keys A and B; without gradients its resized logits come from pool inf.
function Seg:bind(grad_enabled, inf, grad)
    self.grad_enabled = grad_enabled
    self.out_conv.dx, self.dup = grad:get('A'), grad:get('B')
    local act = grad_enabled and self.own or inf
    self.up, self.out_conv.y = act:get('head.up'), act:get('head.logits')
    self.mfam:bind(grad_enabled, inf, grad)
end

function Seg:select(a)
    self.mfam:select(a.width, a.decoder.conv, a.decoder.pool)
    self.out_conv:select(self.k, self.k)
end

--- f: stage outputs; input_hw = {H, W}: the logits' size.
function Seg:forward(f, input_hw)
    self.l4 = self.mfam:forward(f)
    return self:upsample_step(input_hw[1], input_hw[2])
end

--- The MFAM's logits (self.l4) resized to h x w, then the final 3x3 conv. Without gradients
--- (and for 2 to NAD_CONV2D_SMALL_MAX_C classes: the conv's few-channel path; one class is a
--- depthwise conv) in one operator that never stores the resized map (the same bits);
--- AUTONAD_FUSED=0 runs the two, for A/B timing.
function Seg:upsample_step(h, w)
    local conv = self.out_conv
    if FUSED and not self.grad_enabled and self.k >= 2 and self.k <= C.NAD_CONV2D_SMALL_MAX_C then
        local v = conv.v
        check(C.nad_conv2d_resized_forward(workspace, conv.params, 1, self.l4, h, w, v.w.value,
            v.b and v.b.value, conv.y))
        return conv.y
    end
    check(C.nad_resize_bilinear_forward(h, w, 1, self.l4, self.up))
    return conv:forward(self.up)
end

function Seg:backward(f, dlogits)
    local dup = self.out_conv:backward(self.up, dlogits)
    check(C.nad_resize_bilinear_backward(1, self.l4, dup, self.dup))
    return self.mfam:backward(f, self.dup)
end

---------------------------------------------------------------------------------------------
local Cls = class('ClsHead')
M.cls = Cls

function Cls:init(P, space, widths_max, k)
    self.k = k
    self.fc = {}
    for s = 1, #widths_max do
        self.fc[s] = layers.Linear.new(P, 'cls.fc' .. s, widths_max[s], k, { bias = false })
    end
    self.bias = P:add('cls.bias', { k }, require('autonad.supernet.params').fill.zeros)
    self.pool, self.dpool, self.df = {}, {}, {}
    for s = 1, #widths_max do self.pool[s], self.dpool[s], self.df[s] = tensor.new(), tensor.new(), tensor.new() end
    self.logits = tensor.new()
end

--- Its buffers are a few pooled vectors per stage: nothing to share.
function Cls:bind() end

function Cls:select(a)
    for s, fc in ipairs(self.fc) do fc:select(a.width[s], self.k) end
    self.bias.view = function(t) return t end
end

function Cls:forward(f)
    local n = f[1]:size(1)
    self.logits:resize(n, 1, 1, self.k)
    -- logits = bias + sum_s fc_s(mean over pixels of f_s)
    local b = self.bias.value:view(1, 1, 1, self.k)
    check(C.nad_add(1, self.logits:zero(), 1, b, self.logits))
    for s, fc in ipairs(self.fc) do
        check(C.nad_adaptive_avgpool2d_forward(1, 1, f[s], self.pool[s]))
        check(C.nad_add(1, self.logits, 1, fc:forward(self.pool[s]), self.logits))
    end
    return self.logits
end

function Cls:backward(f, dlogits)
    local n = f[1]:size(1)
    -- dbias = sum over images of dlogits
    local dl = dlogits:contiguous()
    local g = self.bias.grad
    for i = 1, n do
        local row = dl:narrow(1, i, 1):view(self.k)
        check(C.nad_add(1, g, 1, row, g))
    end
    for s, fc in ipairs(self.fc) do
        local dp = fc:backward(self.pool[s], dl)
        check(C.nad_adaptive_avgpool2d_backward(f[s], dp, self.df[s]))
    end
    return self.df
end

return M
