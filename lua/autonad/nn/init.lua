-- autonad.nn: the layers. nn.X loads lua/autonad/nn/X.lua on first use, so adding a layer
-- is adding its file (no registry to edit).
local nn = {}
return setmetatable(nn, {
    __index = function(t, name)
        local ok, mod = pcall(require, 'autonad.nn.' .. name)
        if not ok then
            if tostring(mod):find("module 'autonad.nn." .. name .. "' not found", 1, true) then
                error('autonad: no layer nn.' .. name, 2)
            end
            error(mod, 2)
        end
        rawset(t, name, mod)
        return mod
    end,
})
