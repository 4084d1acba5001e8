-- autonad.nn.Sequential: runs its children one after another; backward in reverse.
local class = require 'autonad.class'
local Module = require 'autonad.nn.Module'

local Sequential = class('Sequential', Module)

function Sequential:init(...)
    Module.init(self)
    self.modules = {}
    for _, m in ipairs({ ... }) do self:add(m) end
end

function Sequential:add(m)
    self.modules[#self.modules + 1] = m
    return self
end

function Sequential:forward(x)
    for _, m in ipairs(self.modules) do x = m:forward(x) end
    self.output = x
    return x
end

function Sequential:backward(x, dy)
    local mods = self.modules
    for i = #mods, 2, -1 do dy = mods[i]:backward(mods[i - 1].output, dy) end
    self.grad_input = mods[1]:backward(x, dy)
    return self.grad_input
end

function Sequential:__tostring()
    local parts = {}
    for i, m in ipairs(self.modules) do parts[i] = '  (' .. i .. ') ' .. tostring(m) end
    return 'nn.Sequential {\n' .. table.concat(parts, '\n') .. '\n}'
end

return Sequential
