-- autonad.pipeline.optstate: an optimiser's state inside a checkpoint: its tensors go in as
-- 'opt/<parameter name>/<state name>', the rest (kind, hyper-parameters, step counts, which
-- state tensors exist) as plain meta. Used by the supernet training and fine-tuning stages.
local M = {}

--- Adds opt's state tensors to `tensors` (entries[i] names parameter i); returns the meta.
function M.pack(opt, entries, tensors)
    local sd = opt:state_dict()
    local meta = { kind = sd.kind, hyper = sd.hyper, steps = sd.steps, state = {} }
    for i, st in ipairs(sd.state) do
        local names = {}
        for sn, t in pairs(st) do
            tensors['opt/' .. entries[i].name .. '/' .. sn] = t
            names[#names + 1] = sn
        end
        table.sort(names)
        meta.state[i] = names
    end
    return meta
end

--- Restores opt from what pack wrote (meta from the checkpoint's meta, tensors its tensors).
function M.unpack(opt, entries, meta, tensors)
    local state = {}
    for i, names in ipairs(meta.state) do
        state[i] = {}
        for _, sn in ipairs(names) do state[i][sn] = tensors['opt/' .. entries[i].name .. '/' .. sn] end
    end
    opt:load_state_dict({ kind = meta.kind, hyper = meta.hyper, steps = meta.steps, state = state })
end

return M
