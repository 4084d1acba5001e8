-- autonad.supernet: the AutoNAD supernet (docs/supernet.md). It owns the largest weights of
-- every layer; set_arch(a) selects a subnet as a set of views, forward / backward run it, and
-- gradients land in the shared weights' slices. extract() copies a subnet into a standalone
-- network with its own contiguous weights.
--   local net = supernet.new(space, { in_channels = 1, classes = 4, head = 'seg', seed = 0 })
--   net:set_arch(arch.sample(space, rng)); local logits = net:forward(x)  -- x [N,H,W,Cin]
local ffi = require 'ffi'
local class = require 'autonad.class'
local tensor = require 'autonad.tensor'
local random = require 'autonad.random'
local core = require 'autonad.ffi'
local arch_mod = require 'autonad.arch'
local Params = require 'autonad.supernet.params'
local buffers = require 'autonad.supernet.buffers'
local Stage = require 'autonad.supernet.encoder'
local heads = require 'autonad.supernet.heads'
local C, check = core.C, core.check

local Supernet = class('Supernet')

local function max_of(l) local m = l[1]; for _, v in ipairs(l) do if v > m then m = v end end; return m end

--- opts: in_channels (1 or 3), classes, head ('seg' or 'cls'), seed (weight init and
--- drop-path draws), ignore_label (255).
function Supernet:init(space, opts)
    self.space = space
    self.opts = opts
    self.head_kind = opts.head or 'seg'
    if self.head_kind ~= 'seg' and self.head_kind ~= 'cls' then
        error("autonad: supernet head must be 'seg' or 'cls', got " .. tostring(opts.head), 2)
    end
    self.classes, self.in_channels = opts.classes, opts.in_channels or 1
    self.ignore_label = opts.ignore_label or 255
    self.rng = random.new(opts.seed or 0)
    self.P = Params.new(self.rng)
    local widths_max, total = {}, 0
    for s, st in ipairs(space.stages) do
        widths_max[s] = max_of(st.width)
        total = total + max_of(st.depth)
    end
    self.stages = {}
    local first = 1
    for s, st in ipairs(space.stages) do
        self.stages[s] = Stage.new(self.P, s, st, s == 1 and self.in_channels or widths_max[s - 1],
            space.drop_path, first, total)
        first = first + max_of(st.depth)
    end
    self.head = heads[self.head_kind].new(self.P, space, widths_max, self.classes)
    self.features = {}
    self.dfeat = {}
    for s = 1, #space.stages do self.dfeat[s] = tensor.new() end
    self.dlogits = tensor.new()
    self.loss_value = ffi.new('float[1]')
    local Pool = buffers.Pool
    self.pools = { grad = Pool.new(), inf = Pool.new(), head_grad = Pool.new(), head_inf = Pool.new() }
    self:set_training(false)
    self:set_grad_enabled(true)
end

--- With gradients off (evaluation, search, latency, prediction) a forward keeps only what a
--- later step reads, sharing the rest (buffers.lua), and backward is refused until a forward
--- runs with them on again. Turning them off also freezes the weights (process-wide,
--- nad_set_weights_frozen: layers keep their packed weights between forwards, optimiser
--- steps are refused); turning them on unfreezes. Returns the previous setting.
function Supernet:set_grad_enabled(on)
    local was = self.grad_enabled
    on = on ~= false
    if was ~= on then
        C.nad_set_weights_frozen(on and 0 or 1)
        for _, st in ipairs(self.stages) do st:bind(on, self.pools) end
        self.head:bind(on, self.pools.head_inf, self.pools.head_grad)
        self.grad_enabled = on
    end
    return was
end

--- Training mode turns drop-path on.
function Supernet:set_training(on)
    self.training = on
    for _, st in ipairs(self.stages) do st:set_training(on) end
end

--- Selects the subnet a (validated against the space; errors name the gene).
function Supernet:set_arch(a)
    arch_mod.validate(self.space, a)
    self.P:deactivate_all()
    for s, st in ipairs(self.stages) do
        st:select(s == 1 and self.in_channels or a.width[s - 1], a.width[s], a.depth[s], a.ratio[s], a.op[s])
    end
    self.head:select(a)
    self.arch = a
end

--- x [N,H,W,Cin] -> logits ([N,H,W,K] for 'seg', [N,K] for 'cls').
function Supernet:forward(x)
    if not self.arch then error('autonad: supernet:forward before set_arch', 2) end
    self.input = x
    self.forward_kept = self.grad_enabled
    local t = x
    for s, st in ipairs(self.stages) do
        t = st:forward(t, self.rng)
        self.features[s] = t
    end
    local logits = self.head:forward(self.features, { x:size(2), x:size(3) })
    if self.head_kind == 'cls' then logits = logits:view(x:size(1), self.classes) end
    self.logits = logits
    return logits
end

--- Accumulates the gradients of the active weights for dlogits (shaped like the logits).
function Supernet:backward(dlogits)
    if not self.forward_kept then
        error('autonad: supernet:backward after a forward with gradients off ' ..
            '(set_grad_enabled(true), then forward again)', 2)
    end
    if self.head_kind == 'cls' then dlogits = dlogits:view(dlogits:size(1), 1, 1, self.classes) end
    local dfs = self.head:backward(self.features, dlogits)
    local carry = nil
    for s = #self.stages, 1, -1 do
        local df = dfs[s]
        if carry then
            check(C.nad_add(1, dfs[s], 1, carry, self.dfeat[s]))
            df = self.dfeat[s]
        end
        carry = self.stages[s]:backward(s == 1 and self.input or self.features[s - 1], df)
    end
end

--- Cross entropy of logits against labels (a tensor of class indices, ignore_label skipped);
--- also leaves dlogits = d loss / d logits in self.dlogits. Returns the loss (a number).
function Supernet:loss(logits, labels)
    check(C.nad_cross_entropy_loss_grad(self.ignore_label, 1, logits, labels, self.loss_value,
        self.dlogits))
    return self.loss_value[0]
end

--- The registry (parameters, active views, extraction).
function Supernet:params() return self.P end

function Supernet:zero_grad() self.P:zero_grad() end

--- The active weights as contiguous tensors (export names): the subnet's own weights.
function Supernet:extract_weights() return self.P:extract('value') end

--- A standalone network for the current architecture with its own contiguous weights
--- (a supernet over the one-point space of this architecture), loaded from this one.
function Supernet:extract()
    local a = self.arch
    local sub = Supernet.new(arch_mod.space_of(self.space, a), self.opts)
    sub:set_arch(a)
    sub.P:load_active(self:extract_weights(), 'the supernet')
    return sub
end

--- Loads a subnet's weights (export names, e.g. from extract_weights or a file) into the
--- current architecture's views.
function Supernet:load_subnet(tensors, source) self.P:load_active(tensors, source) end

return Supernet
