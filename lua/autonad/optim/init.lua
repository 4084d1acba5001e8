-- autonad.optim: optimisers (optim.SGD, optim.Adam, optim.AdamW, each built over the lists
-- module:parameters() returns) and learning-rate schedules (optim.schedule). optim.X loads
-- lua/autonad/optim/X.lua on first use, so adding an optimiser is adding its file.
local optim = {}
return setmetatable(optim, {
    __index = function(t, name)
        local ok, mod = pcall(require, 'autonad.optim.' .. name)
        if not ok then
            if tostring(mod):find("module 'autonad.optim." .. name .. "' not found", 1, true) then
                error('autonad: no optimiser optim.' .. name, 2)
            end
            error(mod, 2)
        end
        rawset(t, name, mod)
        return mod
    end,
})
