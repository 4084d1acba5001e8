-- autonad.class: the small class helper every module and strategy uses.
--   local Linear = class('Linear', Module)   -- Module is optional
--   function Linear:init(...) ... end        -- called by Linear(...) / Linear.new(...)
local function class(name, parent)
    local cls = {}
    cls.__index = cls
    cls.__name = name
    cls.parent = parent
    if parent then setmetatable(cls, { __index = parent, __call = function(c, ...) return c.new(...) end })
    else setmetatable(cls, { __call = function(c, ...) return c.new(...) end }) end
    cls.new = function(...)
        local self = setmetatable({}, cls)
        if self.init then self:init(...) end
        return self
    end
    cls.__tostring = cls.__tostring or (parent and parent.__tostring)
    return cls
end

return class
