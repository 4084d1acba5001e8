-- autonad.supernet.mfam: the searchable multi-level feature aggregation decoder (UPerNet
-- style PPM + FPN + fuse, docs/supernet.md). Its 10 searchable slots draw their kernels from
-- one 5x5 super-kernel each (layers.SlotConv).
local ffi = require 'ffi'
local class = require 'autonad.class'
local core = require 'autonad.ffi'
local layers = require 'autonad.supernet.layers'
local buffers = require 'autonad.supernet.buffers'
local C, check = core.C, core.check

local Mfam = class('Mfam')

local function resize(h, w, align, x, y) check(C.nad_resize_bilinear_forward(h, w, align, x, y)); return y end

--- widths_max[s]: each stage's largest width; d: decoder width; k: classes; groups: GN groups.
--- With S stages the PPM runs on the last one (f_S) and the FPN has laterals and outputs for
--- stages S-1 .. 1 (the paper's S = 4 gives its 10 slots: 4 PPM convs, 3 laterals, 3 outputs).
function Mfam:init(P, slots, widths_max, d, k, groups)
    self.d, self.k = d, k
    local S = #widths_max
    self.S = S
    local c4 = widths_max[S]
    self.slot_index = {}
    for i, name in ipairs(slots) do self.slot_index[name] = i end
    self.ppm, self.ppm_gn = {}, {}
    for i = 1, 4 do
        self.ppm[i] = layers.SlotConv.new(P, 'dec.ppm' .. i, c4, c4 / 4)
        self.ppm_gn[i] = layers.GNReLU.new(P, 'dec.ppm' .. i .. '.gn', c4 / 4, groups)
    end
    self.ppm_out = layers.Conv.new(P, 'dec.ppm_out', 2 * c4, d, { k = 1, bias = false })
    self.ppm_out_gn = layers.GNReLU.new(P, 'dec.ppm_out.gn', d, groups)
    self.lateral, self.lateral_gn, self.out, self.out_gn = {}, {}, {}, {}
    for s = 1, S - 1 do
        self.lateral[s] = layers.SlotConv.new(P, 'dec.lateral' .. s, widths_max[s], d)
        self.lateral_gn[s] = layers.GNReLU.new(P, 'dec.lateral' .. s .. '.gn', d, groups)
        self.out[s] = layers.SlotConv.new(P, 'dec.out' .. s, d, d)
        self.out_gn[s] = layers.GNReLU.new(P, 'dec.out' .. s .. '.gn', d, groups)
    end
    self.fuse = layers.Conv.new(P, 'dec.fuse', S * d, d, { k = 1 })
    self.fuse_gn = layers.GNReLU.new(P, 'dec.fuse.gn', d, groups)
    self.seg1 = layers.Conv.new(P, 'dec.seg1', d, d, { k = 1 })
    self.seg1_gn = layers.GNReLU.new(P, 'dec.seg1.gn', d, groups)
    self.seg2 = layers.Conv.new(P, 'dec.seg2', d, k, { k = 1 })
    self.pool, self.up, self.dpool, self.dup, self.dg = {}, {}, {}, {}, {}
    self.fsum, self.fu, self.dfsum, self.carry, self.df = {}, {}, {}, {}, {}
    self.outs, self.ppm_parts = {}, {}
    self.ptrs5 = ffi.new('nad_tensor *[5]')
    self.sizes5 = ffi.new('int64_t[5]')
    self.own = buffers.Pool.new()
    self:bind(true, buffers.Pool.new(), buffers.Pool.new())
end

-- layer.field = pool:get(key) for each field = key of map
local function take(layer, pool, map)
    for field, key in pairs(map) do layer[field] = pool:get(key) end
end

-- along a chain a GroupNorm's gradient lands in B and the conv before it writes A
local GN_GRAD = { dn = 'N', dx = 'B' }
local SLOT_GRAD = { dx = 'A', ddw = 'D1', dxu = 'D2' }

--- The decoder's memory plan (buffers.lua). Gradients: the backward is a chain of steps, so
--- the layers share a few keys of pool grad (A and B alternate along the chain, N is the
--- ReLU's gradient, W the wide gradient at a concatenation, D1 / D2 a depthwise slot's inner
--- ones); what a later step still reads has a key of its own. Activations: with gradients
--- on every layer keeps its own (self.own); with them off (grad_enabled false) they come from
--- pool inf, where only the tensors a later step reads (each PPM branch's output, the PPM
--- output P, the FPN outputs and the running top-down sum) have keys of their own.
function Mfam:bind(grad_enabled, inf, grad)
    local S = self.S
    -- gradients
    take(self.seg2, grad, { dx = 'A' })
    take(self.seg1_gn, grad, GN_GRAD)
    take(self.seg1, grad, { dx = 'A' })
    take(self.fuse_gn, grad, GN_GRAD)
    take(self.ppm_out_gn, grad, GN_GRAD)
    take(self.ppm_out, grad, { dx = 'W' })
    -- the fuse's input gradient: part 1 in A (free once fuse_gn has read it); part s's resized
    -- gradient in T, then its own in U<s>
    self.dz, self.dtmp = grad:get('A'), grad:get('T')
    for s = 1, S - 1 do
        take(self.out_gn[s], grad, GN_GRAD)
        take(self.out[s], grad, SLOT_GRAD)
        take(self.lateral_gn[s], grad, GN_GRAD)
        take(self.lateral[s], grad, SLOT_GRAD)
        self.dup[s] = grad:get('U' .. (s + 1))
        self.dfsum[s], self.carry[s] = grad:get('C'), grad:get('K')
    end
    for s = 1, S do self.df[s] = grad:get('df' .. s) end
    for i = 1, 4 do
        take(self.ppm_gn[i], grad, GN_GRAD)
        take(self.ppm[i], grad, SLOT_GRAD)
        self.dg[i], self.dpool[i] = grad:get('G' .. i), grad:get('P')
    end
    -- activations; fu (the upsampled top, with gradients on) is read by its add only
    for s = 1, S - 1 do self.fu[s] = inf:get('fu') end
    -- the fuse's coarse parts W_s o_s (s >= 2), read by their resize only
    self.u = {}
    for s = 2, S do self.u[s - 1] = inf:get('u' .. s) end
    self.uptrs = ffi.new('const nad_tensor *[?]', S - 1)
    self.sum_in_place = not grad_enabled
    if grad_enabled then
        local own = self.own
        local function keep(prefix, layer) buffers.bind(layer, own, nil, prefix .. '.') end
        keep('seg2', self.seg2); keep('seg1', self.seg1); keep('seg1_gn', self.seg1_gn)
        keep('fuse', self.fuse); keep('fuse_gn', self.fuse_gn)
        keep('ppm_out', self.ppm_out); keep('ppm_out_gn', self.ppm_out_gn)
        self.cat = own:get('cat')
        for s = 1, S - 1 do
            keep('out' .. s, self.out[s]); keep('out_gn' .. s, self.out_gn[s])
            keep('lateral' .. s, self.lateral[s]); keep('lateral_gn' .. s, self.lateral_gn[s])
            self.fsum[s] = own:get('fsum' .. s)
        end
        for i = 1, 4 do
            keep('ppm' .. i, self.ppm[i]); keep('ppm_gn' .. i, self.ppm_gn[i])
            self.pool[i], self.up[i] = own:get('pool' .. i), own:get('up' .. i)
        end
        return
    end
    -- each GroupNorm+ReLU runs in place on its conv's output; lateral s is made in the running
    -- sum's buffer (keys alternating by stage, as step s reads the sum of s + 1), to which
    -- top_down_step adds the resized top
    local gn = function(y) return { y = y, mean = 'gm', rstd = 'gr' } end
    local slot = function(y) return { y = y, xu = 'sx', dw_out = 'sd' } end
    for i = 1, 4 do
        self.pool[i], self.up[i] = inf:get('p0'), inf:get('up' .. i)
        take(self.ppm[i], inf, slot('p1'))
        take(self.ppm_gn[i], inf, gn('p1'))
    end
    self.cat = inf:get('cat')
    take(self.ppm_out, inf, { y = 'P' })
    take(self.ppm_out_gn, inf, gn('P'))
    for s = 1, S - 1 do
        local sum = 'fsum' .. s % 2
        take(self.lateral[s], inf, slot(sum))
        take(self.lateral_gn[s], inf, gn(sum))
        self.fsum[s] = inf:get(sum)
        take(self.out[s], inf, slot('o' .. s))
        take(self.out_gn[s], inf, gn('o' .. s))
    end
    take(self.fuse, inf, { y = 'c1' })
    take(self.fuse_gn, inf, gn('c1'))
    take(self.seg1, inf, { y = 'c2' })
    take(self.seg1_gn, inf, gn('c2'))
    take(self.seg2, inf, { y = 'c1' })
end

--- widths: this subnet's stage widths; conv: the slot types; pool: the 4 PPM sizes.
function Mfam:select(widths, conv, pool)
    local d, c4 = self.d, widths[self.S]
    local slot = self.slot_index
    self.widths, self.pool_sizes = widths, pool
    for i = 1, 4 do
        self.ppm[i]:select(c4, c4 / 4, conv[slot['ppm' .. i]])
        self.ppm_gn[i]:select(c4 / 4)
    end
    self.ppm_out:select(2 * c4, d)
    self.ppm_out_gn:select(d)
    for s = 1, self.S - 1 do
        self.lateral[s]:select(widths[s], d, conv[slot['lateral' .. s]])
        self.lateral_gn[s]:select(d)
        self.out[s]:select(d, d, conv[slot['out' .. s]])
        self.out_gn[s]:select(d)
    end
    self.fuse:select(self.S * d, d)
    self.fuse_gn:select(d)
    self.seg1:select(d, d)
    self.seg1_gn:select(d)
    self.seg2:select(d, self.k)
end

local function concat(ptrs, list, y)
    for i, t in ipairs(list) do ptrs[i - 1] = t end
    check(C.nad_concat(#list, ffi.cast('const nad_tensor *const *', ptrs), 3, y))
    return y
end

local function split(ptrs, sizes, y, list)
    for i, t in ipairs(list) do ptrs[i - 1], sizes[i - 1] = t.t, t.n end
    check(C.nad_split(y, 3, #list, sizes, ptrs))
end

-- the fuse's part s >= 2: o_s, or P for s = S
local function fuse_part(self, s) return s < self.S and self.outs[s] or self.P end

-- the fuse weight's S column blocks as [D, D] matrices, value and gradient (views of the
-- selected weight, cached while it stays the same)
local function fuse_weight_parts(self)
    local w = self.fuse.v.w
    if not self.fuse_wparts or self.fuse_wparts.w ~= w then
        local S, d = self.S, self.d
        local v2, g2 = w.value:view(d, S * d), w.grad:view(d, S * d)
        self.fuse_wparts = { w = w, value = {}, grad = {} }
        for s = 1, S do
            self.fuse_wparts.value[s] = v2:narrow(2, (s - 1) * d + 1, d)
            self.fuse_wparts.grad[s] = g2:narrow(2, (s - 1) * d + 1, d)
        end
    end
    return self.fuse_wparts
end

-- The forward in named steps; the latency table (autonad.latency) times each step alone.

--- PPM branch i on f4: adaptive pool, the slot's conv, GroupNorm+ReLU, resized back (self.up[i]).
function Mfam:ppm_branch(i, f4)
    local p = self.pool_sizes[i]
    check(C.nad_adaptive_avgpool2d_forward(p, p, f4, self.pool[i]))
    local g = self.ppm_gn[i]:forward(self.ppm[i]:forward(self.pool[i]))
    return resize(f4:size(2), f4:size(3), 1, g, self.up[i])
end

--- concat(f4, the four branches), 1x1 conv, GroupNorm+ReLU: the PPM's output self.P.
function Mfam:ppm_merge(f4)
    local parts = self.ppm_parts
    parts[1] = f4
    for i = 1, 4 do parts[i + 1] = self.up[i] end
    self.P = self.ppm_out_gn:forward(self.ppm_out:forward(concat(self.ptrs5, parts, self.cat)))
    return self.P
end

--- The lateral slot of stage s on f_s (conv, GroupNorm+ReLU).
function Mfam:lateral_step(s, fs)
    return self.lateral_gn[s]:forward(self.lateral[s]:forward(fs))
end

--- FPN step at stage s: fsum_s = lateral_s + up(top), then the out slot (self.outs[s]).
--- Without gradients lateral_s already lies in fsum_s (bind), and up(top) is added to it.
function Mfam:top_down_step(s, fs, top)
    if self.sum_in_place then
        check(C.nad_resize_bilinear_accumulate(0, top, self.fsum[s]))
    else
        resize(fs:size(2), fs:size(3), 0, top, self.fu[s])
        check(C.nad_add(1, self.fu[s], 1, self.lateral_gn[s].y, self.fsum[s]))
    end
    self.outs[s] = self.out_gn[s]:forward(self.out[s]:forward(self.fsum[s]))
    return self.fsum[s]
end

--- fuse(concat(o_1, up(o_2), ..., up(o_{S-1}), up(P))) at f_1's size, then seg1, seg2: logits.
--- The fuse is a 1x1 conv, and a 1x1 conv commutes with the bilinear resize (both are linear,
--- one across channels, the other across pixels), so it is computed as
---     W_1 o_1 + b + sum over s >= 2 of up(W_s o_s)
--- with each part's D x D block W_s applied at its own, coarser resolution: the same numbers
--- (up to rounding) for a quarter of the full-resolution products (at D = 256 and 200x200
--- input, 0.44 instead of 1.31 GFLOP per image), and the S*D-wide concatenation is never
--- stored. The up(...) are added in place, all in one pass over the full-resolution map
--- (nad_resize_bilinear_accumulate_many).
function Mfam:fuse_step(f1)
    local S = self.S
    local wp = fuse_weight_parts(self)
    local fb = self.fuse.v.b
    local y = self.fuse.y
    check(C.nad_linear_forward(self.outs[1], wp.value[1], fb and fb.value, y))
    for s = 2, S do
        check(C.nad_linear_forward(fuse_part(self, s), wp.value[s], nil, self.u[s - 1]))
        self.uptrs[s - 2] = self.u[s - 1]
    end
    if S > 1 then check(C.nad_resize_bilinear_accumulate_many(S - 1, 0, self.uptrs, y)) end
    local s1 = self.seg1_gn:forward(self.seg1:forward(self.fuse_gn:forward(y)))
    return self.seg2:forward(s1)
end

--- f: the stage outputs [N,H_s,W_s,C_s]; returns logits at f_1's resolution [N,H1,W1,K].
function Mfam:forward(f)
    local S = self.S
    for i = 1, 4 do self:ppm_branch(i, f[S]) end
    local top = self:ppm_merge(f[S])
    for s = S - 1, 1, -1 do
        self:lateral_step(s, f[s])
        top = self:top_down_step(s, f[s], top)
    end
    return self:fuse_step(f[1])
end

function Mfam:backward(f, dlogits)
    local ds1 = self.seg2:backward(self.seg1_gn.y, dlogits)
    local dfz = self.seg1:backward(self.fuse_gn.y, self.seg1_gn:backward(self.seg1.y, ds1))
    -- the fuse as fuse_step computes it: part 1 at full resolution (with the bias); part s
    -- (o_s, or P for s = S) through the resize's backward first, then its D x D block at o_s's
    -- resolution
    local dfuse = self.fuse_gn:backward(self.fuse.y, dfz)
    local S, wp, fb = self.S, fuse_weight_parts(self), self.fuse.v.b
    local do_ = {}
    check(C.nad_linear_backward(self.outs[1], wp.value[1], dfuse, self.dz, wp.grad[1], fb and fb.grad))
    do_[1] = self.dz
    for s = 2, S do
        local o = fuse_part(self, s)
        check(C.nad_resize_bilinear_backward(0, o, dfuse, self.dtmp))
        check(C.nad_linear_backward(o, wp.value[s], self.dtmp, self.dup[s - 1], wp.grad[s], nil))
        do_[s] = self.dup[s - 1]
    end
    local dP = do_[S]
    -- FPN, fine to coarse: fsum_s feeds out_s and (resized) fsum_{s-1}
    local carry = nil
    for s = 1, S - 1 do
        local dsum = self.out[s]:backward(self.fsum[s], self.out_gn[s]:backward(self.out[s].y, do_[s]))
        if carry then check(C.nad_add(1, dsum, 1, carry, self.dfsum[s])) else self.dfsum[s]:resize_as(dsum):copy(dsum) end
        local dl = self.lateral_gn[s]:backward(self.lateral[s].y, self.dfsum[s])
        local dlat = self.lateral[s]:backward(f[s], dl)
        self.df[s]:resize_as(dlat):copy(dlat)
        local coarser = s < S - 1 and self.fsum[s + 1] or self.P
        check(C.nad_resize_bilinear_backward(0, coarser, self.dfsum[s], self.carry[s]))
        carry = self.carry[s]
    end
    if carry then check(C.nad_add(1, dP, 1, carry, dP)) end
    -- PPM
    local dcat = self.ppm_out:backward(self.cat, self.ppm_out_gn:backward(self.ppm_out.y, dP))
    local c4 = self.widths[S]
    local parts = { { t = self.df[S], n = c4 } }
    for i = 1, 4 do
        self.dg[i]:resize(dcat:size(1), dcat:size(2), dcat:size(3), c4 / 4)
        parts[i + 1] = { t = self.dg[i], n = c4 / 4 }
    end
    self.df[S]:resize(dcat:size(1), dcat:size(2), dcat:size(3), c4)
    split(self.ptrs5, self.sizes5, dcat, parts)
    for i = 1, 4 do
        local g = self.ppm_gn[i]
        check(C.nad_resize_bilinear_backward(1, g.y, self.dg[i], self.dtmp))
        local dpool = self.ppm[i]:backward(self.pool[i], g:backward(self.ppm[i].y, self.dtmp))
        check(C.nad_adaptive_avgpool2d_backward(f[S], dpool, self.dpool[i]))
        check(C.nad_add(1, self.df[S], 1, self.dpool[i], self.df[S]))
    end
    return self.df
end

return Mfam
