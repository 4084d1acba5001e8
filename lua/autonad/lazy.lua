-- autonad.lazy: makes a module table load its submodules on first use (t.X requires
-- '<prefix>.X'), so adding a layer, optimiser or adapter is adding its file. A missing
-- submodule gives nil, or raises "autonad: no <what> <prefix>.X" when `what` is given.
return function(t, prefix, what)
    return setmetatable(t, {
        __index = function(tbl, name)
            local ok, mod = pcall(require, prefix .. '.' .. name)
            if not ok then
                if tostring(mod):find("module '" .. prefix .. '.' .. name .. "' not found", 1, true) then
                    if what then error('autonad: no ' .. what .. ' ' .. prefix:gsub('^autonad%.', '') .. '.' .. name, 2) end
                    return nil
                end
                error(mod, 2)
            end
            rawset(tbl, name, mod)
            return mod
        end,
    })
end
