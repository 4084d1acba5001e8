-- autonad.ffi: loads the core library and declares its API by reading core/autonad.h itself
-- (lines starting with '#' dropped), so the Lua side never drifts from the C header.
-- Every other module reaches the core through `C` and `check` from here.
local ffi = require 'ffi'

local M = {}

local here = debug.getinfo(1, 'S').source:match('^@(.*)/[^/]*$') or '.'

local function readable(path)
    local f = path and io.open(path, 'rb')
    if f then f:close() end
    return f ~= nil
end

-- candidates may hold nils (an unset variable), so walk them by count, not ipairs
local function first_readable(candidates, n)
    for i = 1, n do
        if readable(candidates[i]) then return candidates[i] end
    end
end

-- installed: <luadir>/autonad/autonad.h; source tree: lua/autonad/../../core/autonad.h
local header = first_readable({ here .. '/autonad.h', here .. '/../../core/autonad.h' }, 2)
if not header then error('autonad: cannot find autonad.h beside ' .. here .. ' or in ../../core', 0) end

local lib = first_readable({
    os.getenv('AUTONAD_LIB'),
    here .. '/../../build/libautonad.so',        -- running from a source tree
    package.searchpath('libautonad', package.cpath), -- installed by luarocks or cmake
}, 3)
if not lib then
    error('autonad: cannot find libautonad.so: set AUTONAD_LIB, build into ./build, ' ..
        'or install with luarocks make', 0)
end

local function cdef_from_header(path)
    local lines = {}
    for line in io.lines(path) do
        if not line:match('^%s*#') then lines[#lines + 1] = line end
    end
    ffi.cdef(table.concat(lines, '\n'))
end

cdef_from_header(header)
-- OpenMP threads that spin while waiting steal the cores from everything else on a shared
-- machine (15x slower under load, measured); sleep instead unless the user chose. libgomp
-- reads this when it loads, which is with the core library just below. (The core's own loops
-- run on its pool, core/parallel.c, whose workers always sleep; what is left on OpenMP is
-- OpenBLAS's threading and a few rare loops.)
ffi.cdef 'int setenv(const char *name, const char *value, int overwrite);'
if not os.getenv('OMP_WAIT_POLICY') and not os.getenv('GOMP_SPINCOUNT') then
    ffi.C.setenv('OMP_WAIT_POLICY', 'PASSIVE', 0)
end
-- Pin the library (RTLD_NODELETE): LuaJIT unloads it when the Lua state closes, while the
-- worker threads it started (its pool's, OpenMP's, OpenBLAS's) may still be running its code.
ffi.cdef 'void *dlopen(const char *path, int flags);'
local RTLD_NOW, RTLD_NODELETE = 0x2, 0x1000
ffi.C.dlopen(lib, RTLD_NOW + RTLD_NODELETE)
M.C = ffi.load(lib)
M.header_path, M.library_path = header, lib

-- Turns a failed status into a Lua error carrying the C message, raised at the caller of
-- the function that called check (level 3): the user sees their own line.
function M.check(status)
    if status ~= 0 then error(ffi.string(M.C.nad_last_error()), 3) end
    return status
end

-- Same for pointer results (NULL on failure).
function M.check_ptr(p)
    if p == nil then error(ffi.string(M.C.nad_last_error()), 3) end
    return p
end

--- Call after writing into weights by any means (a copy, a checkpoint load): drops the packed
--- weight panels the core keeps while weights are frozen (nad_set_weights_frozen).
function M.weights_changed() M.C.nad_set_weights_frozen(M.C.nad_weights_frozen()) end

return M
