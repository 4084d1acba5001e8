-- autonad.tensor: the Lua face of nad_tensor (an ffi.metatype on the C handle).
-- Dimensions and indices are 1-based here, as in Torch; the C core is 0-based.
local ffi = require 'ffi'
local core = require 'autonad.ffi'
local C, check, check_ptr = core.C, core.check, core.check_ptr

local M = {}
local Tensor = {}
Tensor.__index = Tensor

local sizes_buf = ffi.new('int64_t[5]')
local perm_buf = ffi.new('int32_t[5]')

local function own(p) return ffi.gc(check_ptr(p), C.nad_tensor_free) end

-- sizes from (d1, d2, ...) or ({d1, d2, ...}); fills sizes_buf, returns ndim
local function parse_sizes(a, ...)
    local t = type(a) == 'table' and a or { a, ... }
    if #t > 5 then error('autonad: at most 5 dimensions, got ' .. #t, 3) end
    for i = 1, #t do
        local s = t[i]
        if type(s) ~= 'number' or s < 0 or s % 1 ~= 0 then
            error('autonad: size ' .. i .. ' must be a non-negative integer, got ' .. tostring(s), 3)
        end
        sizes_buf[i - 1] = s
    end
    return #t
end

--- A new zero-filled tensor: tensor(2, 3) or tensor({2, 3}); tensor() is an empty buffer.
function M.new(...)
    if select('#', ...) == 0 then return own(C.nad_tensor_new(1, sizes_buf)) end
    local nd = parse_sizes(...)
    return own(C.nad_tensor_new(nd, sizes_buf))
end

local function shape_of(tbl, shape, depth)
    shape[depth] = #tbl
    if type(tbl[1]) == 'table' then shape_of(tbl[1], shape, depth + 1) end
    return shape
end

--- A tensor from nested Lua tables of numbers: from_table({{1, 2}, {3, 4}}).
function M.from_table(tbl)
    local shape = shape_of(tbl, {}, 1)
    local t = M.new(shape)
    local d, k = C.nad_tensor_data(t), 0
    local function walk(x, depth)
        if #x ~= shape[depth] then error('autonad: ragged table at depth ' .. depth, 4) end
        for i = 1, #x do
            if depth < #shape then walk(x[i], depth + 1)
            else d[k] = x[i]; k = k + 1 end
        end
    end
    walk(tbl, 1)
    return t
end

function Tensor:dim() return C.nad_tensor_ndim(self) end
function Tensor:numel() return tonumber(C.nad_tensor_numel(self)) end
function Tensor:data() return C.nad_tensor_data(self) end
function Tensor:is_contiguous() return C.nad_tensor_is_contiguous(self) == 1 end
function Tensor:same_storage(o) return C.nad_tensor_same_storage(self, o) == 1 end

--- size(i): size of dim i (1-based); size(): a table of all sizes.
function Tensor:size(i)
    if i then return tonumber(C.nad_tensor_size(self, i - 1)) end
    local s = {}
    for d = 1, C.nad_tensor_ndim(self) do s[d] = tonumber(C.nad_tensor_size(self, d - 1)) end
    return s
end

function Tensor:stride(i)
    if i then return tonumber(C.nad_tensor_stride(self, i - 1)) end
    local s = {}
    for d = 1, C.nad_tensor_ndim(self) do s[d] = tonumber(C.nad_tensor_stride(self, d - 1)) end
    return s
end

--- A view of [start, start+len) along dim (1-based dim and start), sharing storage.
function Tensor:narrow(dim, start, len)
    return own(C.nad_tensor_narrow(self, dim - 1, start - 1, len))
end

--- A view with dims permuted (1-based): t:permute(1, 3, 2).
function Tensor:permute(...)
    local p = { ... }
    for i = 1, #p do perm_buf[i - 1] = p[i] - 1 end
    if #p ~= self:dim() then error('autonad: permute needs ' .. self:dim() .. ' dims, got ' .. #p, 2) end
    return own(C.nad_tensor_permute(self, perm_buf))
end

--- A view with a size-1 dim inserted before dim (1-based; dim() + 1 appends).
function Tensor:unsqueeze(dim) return own(C.nad_tensor_unsqueeze(self, dim - 1)) end

--- The diagonal over dims d1, d2 (1-based), appended as the last dim (torch.diagonal).
function Tensor:diagonal(d1, d2) return own(C.nad_tensor_diagonal(self, d1 - 1, d2 - 1)) end

--- A view of a contiguous tensor with other sizes.
function Tensor:view(...)
    local nd = parse_sizes(...)
    return own(C.nad_tensor_reshape(self, nd, sizes_buf))
end
Tensor.reshape = Tensor.view

--- Resizes in place (reusing storage when it is large enough); returns self.
function Tensor:resize(...)
    local nd = parse_sizes(...)
    check(C.nad_tensor_resize(self, nd, sizes_buf))
    return self
end

function Tensor:resize_as(o) return self:resize(o:size()) end

function Tensor:fill(v) check(C.nad_tensor_fill(self, v)); return self end
function Tensor:zero() return self:fill(0) end
function Tensor:copy(src) check(C.nad_tensor_copy(self, src)); return self end
function Tensor:sum() return C.nad_tensor_sum(self) end

--- A new contiguous tensor with a copy of the data.
function Tensor:clone() return M.new(self:size()):copy(self) end

--- self if contiguous, else a contiguous copy.
function Tensor:contiguous() return self:is_contiguous() and self or self:clone() end

-- offset of the element at 1-based indices (i1, i2, ...)
local function offset(t, ...)
    local n, off = select('#', ...), 0
    if n ~= t:dim() then error('autonad: ' .. t:dim() .. ' indices expected, got ' .. n, 3) end
    for d = 1, n do
        local i = select(d, ...)
        local s = C.nad_tensor_size(t, d - 1)
        if i < 1 or i > s then error('autonad: index ' .. i .. ' of dim ' .. d .. ' is outside 1..' .. tonumber(s), 3) end
        off = off + (i - 1) * C.nad_tensor_stride(t, d - 1)
    end
    return off
end

--- The element at 1-based indices: t:get(2, 3).
function Tensor:get(...) return C.nad_tensor_data(self)[offset(self, ...)] end
--- Sets the element at 1-based indices: t:set(v, 2, 3).
function Tensor:set(v, ...) C.nad_tensor_data(self)[offset(self, ...)] = v; return self end

--- Nested Lua tables of the values (any strides).
function Tensor:totable()
    local nd, d = self:dim(), C.nad_tensor_data(self)
    if nd == 0 then return d[0] end
    local size, stride = self:size(), self:stride()
    local function build(dim, off)
        local out = {}
        for i = 1, size[dim] do
            local o = off + (i - 1) * stride[dim]
            out[i] = dim == nd and d[o] or build(dim + 1, o)
        end
        return out
    end
    return build(1, 0)
end

--- Flat Lua list of the values in row-major order.
function Tensor:tolist()
    local c = self:contiguous()
    local d, out = C.nad_tensor_data(c), {}
    for i = 0, c:numel() - 1 do out[i + 1] = d[i] end
    return out
end

function Tensor:__tostring()
    local sz = table.concat(self:size(), 'x')
    if self:numel() > 64 then return 'autonad.Tensor of size ' .. sz end
    local vals = self:tolist()
    for i = 1, #vals do vals[i] = string.format('%.4g', vals[i]) end
    return 'autonad.Tensor of size ' .. sz .. ' [' .. table.concat(vals, ' ') .. ']'
end

ffi.metatype('nad_tensor', Tensor)
M.Tensor = Tensor

--- true when x is a tensor handle.
local tensor_ptr = ffi.typeof('nad_tensor *')
function M.is_tensor(x) return type(x) == 'cdata' and ffi.istype(tensor_ptr, x) end

return M
