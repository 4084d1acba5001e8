-- autonad.workspace: the default scratch arena (nad_workspace) that modules pass to the C
-- operators needing temporary buffers. One per Lua state; it grows once and is reused.
local ffi = require 'ffi'
local core = require 'autonad.ffi'
local C = core.C

local M = {}
M.default = ffi.gc(core.check_ptr(C.nad_workspace_new(0)), C.nad_workspace_free)

--- A separate workspace (for a second thread of work).
function M.new(bytes) return ffi.gc(core.check_ptr(C.nad_workspace_new(bytes or 0)), C.nad_workspace_free) end

return M
