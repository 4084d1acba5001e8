-- autonad.data.neu_cls: the NEU surface defect database (classification): `<class>/<P>_<n>.bmp`,
-- six classes in a fixed order (label k is M.classes[k + 1]).
local folder = require 'autonad.data.folder'

local M = {}
M.classes = { 'crazing', 'inclusion', 'patches', 'pitted_surface', 'rolled-in_scale', 'scratches' }

function M.load(root, opts)
    opts = opts or {}
    return folder.load(root, { classes = opts.classes or M.classes, extensions = { 'bmp' },
        name = 'neu-cls', who = 'neu_cls' })
end

return M
