-- autonad.data: datasets (one adapter per layout), splits, the batch loader and `data info`.
--   local ds = data.load('neu_seg', root);  local sp = data.split.from_files(ds, prefix)
--   for batch in data.loader.new(ds:subset(sp.train), {batch_size = 8, ...}):epoch(1) do ... end
local M = {}

M.adapters = { 'neu_seg', 'magnetic_tile', 'voc', 'neu_cls', 'dagm', 'mvtec', 'folder' }
local aliases = { ['neu-seg'] = 'neu_seg', ['magnetic-tile'] = 'magnetic_tile', mt = 'magnetic_tile',
    ['neu-cls'] = 'neu_cls' }

--- The dataset at root read by the adapter of that name ('neu_seg', 'neu-seg', ...).
function M.load(kind, root, opts)
    local name = aliases[kind] or kind
    local known = false
    for _, a in ipairs(M.adapters) do known = known or a == name end
    if not known then
        error('data.load: unknown dataset kind "' .. tostring(kind) .. '" (known: ' ..
            table.concat(M.adapters, ', ') .. ')', 2)
    end
    return require('autonad.data.' .. name).load(root, opts)
end

--- The folder of the shared real data sets: $AUTONAD_DATA, else ../shared/data beside the
--- repository root (root defaults to the source tree this module lives in), else
--- shared/data inside it or ../../shared/data (a worktree one level deeper); nil if absent.
function M.shared_root(root)
    local fs = require 'autonad.data.fs'
    local env = os.getenv('AUTONAD_DATA')
    if env and env ~= '' then return fs.is_dir(env) and env or nil end
    if not root then
        local here = debug.getinfo(1, 'S').source:match('^@(.*)/[^/]*$') or '.'
        root = here .. '/../../..'
    end
    for _, p in ipairs({ '/../shared/data', '/shared/data', '/../../shared/data' }) do
        if fs.is_dir(root .. p) then
            local h = io.popen('cd ' .. fs.quote(root .. p) .. ' && pwd -P')
            local abs = h:read('*l')
            h:close()
            return abs or root .. p
        end
    end
    return nil
end

return require('autonad.lazy')(M, 'autonad.data')
