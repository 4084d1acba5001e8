-- autonad.checkpoint: named tensors plus JSON metadata in one file, written atomically
-- (temporary file, fsync, rename), so an interrupted write never leaves a half checkpoint.
-- Layout: "NADCKPT1", uint64 header length, JSON header {meta, tensors = [{name, shape,
-- offset}]}, then the float32 data (little-endian, contiguous, offsets in bytes).
-- tests/torch and bench read the same files from Python (numpy) to exchange weights.
local ffi = require 'ffi'
local json = require 'autonad.json'
local tensor = require 'autonad.tensor'

ffi.cdef [[
typedef struct FILE FILE;
FILE *fopen(const char *path, const char *mode);
size_t fwrite(const void *p, size_t size, size_t n, FILE *f);
size_t fread(void *p, size_t size, size_t n, FILE *f);
int fflush(FILE *f);
int fileno(FILE *f);
int fsync(int fd);
int fclose(FILE *f);
char *strerror(int errnum);
]]
local C = ffi.C

local M = {}
local MAGIC = 'NADCKPT1'

local function errno_msg() return ffi.string(C.strerror(ffi.errno())) end

--- Writes tensors (a map name -> tensor) and meta (plain data) to path atomically.
function M.save(path, tensors, meta)
    local names = {}
    for name in pairs(tensors) do names[#names + 1] = name end
    table.sort(names)
    local entries, offset = {}, 0
    for i, name in ipairs(names) do
        local t = tensors[name]
        entries[i] = { name = name, shape = t:size(), offset = offset }
        offset = offset + t:numel() * 4
    end
    local header = json.encode({ meta = meta or {}, tensors = entries })
    local tmp = path .. '.tmp'
    local f = C.fopen(tmp, 'wb')
    if f == nil then error('autonad: cannot write checkpoint ' .. path .. ': ' .. errno_msg(), 2) end
    local ok = true
    local len = ffi.new('uint64_t[1]', #header)
    ok = ok and C.fwrite(MAGIC, 1, 8, f) == 8
    ok = ok and C.fwrite(len, 8, 1, f) == 1
    ok = ok and C.fwrite(header, 1, #header, f) == #header
    for _, name in ipairs(names) do
        local t = tensors[name]:contiguous()
        local n = t:numel()
        ok = ok and (n == 0 or C.fwrite(t:data(), 4, n, f) == n)
    end
    ok = ok and C.fflush(f) == 0 and C.fsync(C.fileno(f)) == 0
    C.fclose(f)
    if not ok then
        os.remove(tmp)
        error('autonad: cannot write checkpoint ' .. path .. ': ' .. errno_msg(), 2)
    end
    local rok, rerr = os.rename(tmp, path)
    if not rok then error('autonad: cannot write checkpoint ' .. path .. ': ' .. tostring(rerr), 2) end
end

--- Reads a checkpoint: returns tensors (name -> new tensor) and meta. Errors name the file.
function M.load(path)
    local f = io.open(path, 'rb')
    if not f then error('autonad: cannot read checkpoint ' .. path .. ': no such file', 2) end
    local bytes = f:read('*a')
    f:close()
    local function bad(why) error('autonad: checkpoint ' .. path .. ': ' .. why, 3) end
    if #bytes < 16 or bytes:sub(1, 8) ~= MAGIC then bad('not an autonad checkpoint (bad magic)') end
    local len = tonumber(ffi.cast('const uint64_t *', ffi.cast('const char *', bytes) + 8)[0])
    if 16 + len > #bytes then bad('truncated header') end
    local ok, header = pcall(json.decode, bytes:sub(17, 16 + len))
    if not ok or type(header) ~= 'table' or type(header.tensors) ~= 'table' then bad('corrupt header') end
    local base = 16 + len
    local out = {}
    for _, e in ipairs(header.tensors) do
        local t = tensor.new(e.shape)
        local n = t:numel() * 4
        if base + e.offset + n > #bytes then
            bad('truncated data for ' .. e.name .. ' (file has ' .. #bytes .. ' bytes)')
        end
        ffi.copy(t:data(), ffi.cast('const char *', bytes) + base + e.offset, n)
        out[e.name] = t
    end
    return out, header.meta
end

return M
