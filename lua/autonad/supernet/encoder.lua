-- autonad.supernet.encoder: one encoder stage: overlapping patch embedding (conv + LayerNorm),
-- up to depth_max hybrid blocks, and the stage's closing LayerNorm (docs/supernet.md).
local class = require 'autonad.class'
local core = require 'autonad.ffi'
local layers = require 'autonad.supernet.layers'
local Block = require 'autonad.supernet.block'
local buffers = require 'autonad.supernet.buffers'
local C, check = core.C, core.check

local Stage = class('Stage')

--- st: the space's stage table; index s; cin_max: input channels (image or previous stage);
--- first_block: index of this stage's first block among the largest net's (for drop-path);
--- blocks_total: the largest net's block count.
function Stage:init(P, s, st, cin_max, drop_path, first_block, blocks_total)
    local prefix = 'stage' .. s .. '.'
    local c_max, k = 0, st.patch_kernel
    for _, w in ipairs(st.width) do c_max = math.max(c_max, w) end
    local ratio_max, depth_max = 0, 0
    for _, r in ipairs(st.ratio) do ratio_max = math.max(ratio_max, r) end
    for _, d in ipairs(st.depth) do depth_max = math.max(depth_max, d) end
    self.patch = layers.Conv.new(P, prefix .. 'patch', cin_max, c_max,
        { k = k, stride = st.patch_stride, pad = math.floor(k / 2) })
    self.patch_norm = layers.LayerNorm.new(P, prefix .. 'patch_norm', c_max, 1e-6)
    self.blocks = {}
    for b = 1, depth_max do
        local rate = blocks_total > 1 and drop_path * (first_block + b - 2) / (blocks_total - 1) or 0
        self.blocks[b] = Block.new(P, prefix .. 'block' .. b .. '.', {
            c_max = c_max, ratio_max = ratio_max, sr = st.sr_ratio,
            operators = st.operators, drop_path = rate })
    end
    self.norm = layers.LayerNorm.new(P, prefix .. 'norm', c_max, 1e-6)
    self.first = s == 1
end

--- The memory plan (buffers.lua): every block takes its gradients from pools.grad; with
--- gradients on each keeps its own activations, with them off all share pools.inf.
function Stage:bind(grad_enabled, pools)
    for _, blk in ipairs(self.blocks) do
        blk:bind(grad_enabled and blk.own or pools.inf, pools.grad)
        blk.grad_enabled = grad_enabled
    end
    -- the stage's own gradients are read at once too (the patch's by Supernet:backward's add)
    for _, nm in ipairs({ 'patch', 'patch_norm', 'norm' }) do
        buffers.bind(self[nm], nil, pools.grad, 'stage.' .. nm .. '.')
    end
end

--- cin: this subnet's input channels; the stage's genes from the architecture.
function Stage:select(cin, c, depth, ratios, ops)
    self.patch:select(cin, c)
    self.patch_norm:select(c)
    self.depth = depth
    for b = 1, depth do self.blocks[b]:select(c, ratios[b], ops[b]) end
    self.norm:select(c)
end

function Stage:set_training(on)
    for _, b in ipairs(self.blocks) do b.training = on end
end

function Stage:forward(x, rng)
    local t = self.patch_norm:forward(self.patch:forward(x))
    self.inputs = self.inputs or {}
    for b = 1, self.depth do
        self.inputs[b] = t
        t = self.blocks[b]:forward(t, rng)
    end
    self.last = t
    return self.norm:forward(t)
end

--- df: gradient of the stage output; returns the input's gradient (nil for stage 1, whose
--- input is the image).
function Stage:backward(x, df)
    local dt = self.norm:backward(self.last, df)
    for b = self.depth, 1, -1 do dt = self.blocks[b]:backward(self.inputs[b], dt) end
    local dp = self.patch_norm:backward(self.patch.y, dt)
    return self.patch:backward(x, dp, not self.first)
end

return Stage
