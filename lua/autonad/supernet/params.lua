-- autonad.supernet.params: the supernet's parameter registry. Each entry holds one full-size
-- weight and its gradient; a subnet activates an entry with a view function (full tensor ->
-- the view this subnet uses: a leading slice, a kernel crop, a diagonal). The optimiser, the
-- gradient zeroing, subnet extraction and checkpoints all go through these entries.
local class = require 'autonad.class'
local tensor = require 'autonad.tensor'
local core = require 'autonad.ffi'

local Params = class('Params')

function Params:init(rng)
    self.list, self.by_name, self.rng = {}, {}, rng
end

--- Registers a parameter of the given sizes, filled by init(t, rng). Returns its entry
--- {name, value, grad, view (false when inactive), export (name in an extracted subnet)}.
function Params:add(name, sizes, init)
    if self.by_name[name] then error('autonad: parameter ' .. name .. ' registered twice', 2) end
    local e = { name = name, value = tensor.new(sizes), grad = tensor.new(sizes), view = false }
    init(e.value, self.rng)
    self.list[#self.list + 1] = e
    self.by_name[name] = e
    return e
end

--- Marks every parameter inactive (before a subnet activates its own).
function Params:deactivate_all()
    for _, e in ipairs(self.list) do e.view, e.export = false, nil end
end

--- Activates e with view function fn; export renames it in an extracted subnet.
function Params.activate(e, fn, export)
    e.view, e.export = fn, export
end

--- The active entries, in registration order.
function Params:active()
    local out = {}
    for _, e in ipairs(self.list) do if e.view then out[#out + 1] = e end end
    return out
end

--- Zeroes the active gradient views (each view made once per view function and kept: a
--- training step makes no new tensors here).
function Params:zero_grad()
    for _, e in ipairs(self.list) do
        local fn = e.view
        if fn then
            e.grad_views = e.grad_views or setmetatable({}, { __mode = 'k' })
            local g = e.grad_views[fn]
            if not g then
                g = fn(e.grad)
                e.grad_views[fn] = g
            end
            g:zero()
        end
    end
end

--- Zeroes every gradient.
function Params:zero_all_grad()
    for _, e in ipairs(self.list) do e.grad:zero() end
end

--- Contiguous copies of the active views of value (or grad with which = 'grad'), keyed by
--- their export names: the extracted subnet's weights.
function Params:extract(which)
    local out = {}
    for _, e in ipairs(self.list) do
        if e.view then out[e.export or e.name] = e.view(e[which or 'value']):clone() end
    end
    return out
end

--- Copies tensors (export name -> tensor, e.g. an extracted subnet) into the active views.
--- Every active parameter must be present with the right shape; errors name the parameter.
function Params:load_active(tensors, source)
    for _, e in ipairs(self.list) do
        if e.view then
            local name = e.export or e.name
            local t = tensors[name]
            if not t then error('autonad: ' .. (source or 'weights') .. ' lack ' .. name, 2) end
            local v = e.view(e.value)
            local vs, ts = table.concat(v:size(), 'x'), table.concat(t:size(), 'x')
            if vs ~= ts then
                error('autonad: ' .. (source or 'weights') .. ': ' .. name .. ' is ' .. ts .. ', expected ' .. vs, 2)
            end
            v:copy(t)
        end
    end
    core.weights_changed()
end

--- Copies every full value from tensors[prefix .. name] (a supernet checkpoint); a missing
--- one is an error naming source.
function Params:load_values(tensors, prefix, source)
    for name, v in pairs(self:named_values()) do
        v:copy(tensors[prefix .. name] or error('autonad: ' .. source .. ' lacks weight ' .. name, 0))
    end
    core.weights_changed()
end

--- Every full value tensor by name (for supernet checkpoints).
function Params:named_values()
    local out = {}
    for _, e in ipairs(self.list) do out[e.name] = e.value end
    return out
end

--- Number of elements in the active views.
function Params:active_numel()
    local n = 0
    for _, e in ipairs(self.list) do if e.view then n = n + e.view(e.value):numel() end end
    return n
end

-- initialisers (the reference code's: linear N(0, .02), conv N(0, sqrt(2 / fan_out)),
-- norms weight 1 bias 0)
Params.fill = {}
function Params.fill.normal(std) return function(t, rng) rng:normal_(t, 0, std) end end
function Params.fill.zeros(t) t:zero() end
function Params.fill.ones(t) t:fill(1) end
--- conv weight [Co, K, K, Ci/groups] (or [Co, Ci] for a 1x1): fan_out = K*K*Co/groups
function Params.fill.conv(groups)
    return function(t, rng)
        local fan_out = t:size(1) / (groups or 1)
        for d = 2, t:dim() - 1 do fan_out = fan_out * t:size(d) end
        rng:normal_(t, 0, math.sqrt(2 / fan_out))
    end
end

return Params
